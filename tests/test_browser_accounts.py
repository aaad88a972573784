"""Accounts end to end in a real browser (Debian's chromium, tests/browser.py) against gunicorn on
PostgreSQL and Redis: sign up with "Sign up" and "Log in" throughout, a new API key shown once
(a reload makes no second key and shows no secret), two-factor turned on with a code computed
here, then a login whose code step refuses guesses past the budget with a page saying when, and
refuses the right code too while locked. The account page's security log shows the login and the
new key."""

import re
import time

import pytest
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from accounts.models import ApiKey
from accounts.ratelimits import CODES_PER_USER
from tests.browser import DESKTOP, PHONE, Visit, confirmation_link, screenshots_folder

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "an account's own passphrase 11"
# Sign in/out in any case, and the sign-up spellings other than "Sign up".
OTHER_WORDINGS = re.compile(r"(?i:sign[ -]?(in|out)\b)|Signup|Sign Up|SIGN UP")


def totp_code(secret: str, offset: int = 0) -> str:
    """RFC 6238 with allauth's own HOTP: the code an authenticator app shows now (+ offset). Near
    the end of a 30 s step it waits for the next, so the code is still current when it arrives."""
    if time.time() % 30 > 27:
        time.sleep(30 - time.time() % 30 + 0.1)
    value = hotp_value(secret, int(time.time()) // 30)
    return format_hotp_value((value + offset) % 1_000_000)


def check_wording(visit: Visit) -> None:
    text = visit.text()
    assert not OTHER_WORDINGS.search(text), (visit.driver.current_url, text)
    assert not OTHER_WORDINGS.search(visit.driver.title), visit.driver.title


def submit_refused(visit: Visit, text: str) -> None:
    """Submit with the button `text`, expecting the 429 page: its status is the one error the
    browser may log (Visit's own submit allows none)."""
    driver = visit.driver
    old_page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.XPATH, f"//button[normalize-space()='{text}']").click()
    WebDriverWait(driver, 10, ignored_exceptions=[WebDriverException]).until(
        expected_conditions.staleness_of(old_page)
    )
    WebDriverWait(driver, 10).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors and all("status of 429" in error for error in errors), errors
    visit.check_page()
    assert "Too many attempts" in visit.text()


def buttons(visit: Visit) -> dict[str, str]:
    """Each visible button's text and class."""
    return {
        b.text.strip(): b.get_attribute("class") or ""
        for b in visit.driver.find_elements(By.TAG_NAME, "button")
        if b.is_displayed() and b.text.strip()
    }


def test_keys_shown_once_two_factor_on_and_guessed_codes_refused(
    live_server_url, browser, tmp_path
):
    base_url, log = live_server_url
    visit = Visit(browser, base_url, screenshots_folder(tmp_path))
    email = "erin@example.com"

    # Sign up: "Sign up" and "Log in" wherever the person looks.
    visit.open("/")
    check_wording(visit)
    visit.click_link("Log in")
    check_wording(visit)
    assert "Log in" in buttons(visit)
    visit.click_link("Sign up")
    check_wording(visit)
    visit.fill(email=email, password1=PASSWORD, password2=PASSWORD)
    visit.submit("Sign up")
    assert "Check your inbox" in visit.text()
    assert "Send the link again" in buttons(visit)
    assert "printed on its console" in visit.text()  # the live server has no mail server
    check_wording(visit)
    visit.driver.set_window_size(*PHONE)
    visit.check_page()
    visit.driver.set_window_size(*DESKTOP)
    browser.get(confirmation_link(log, email))
    visit.check_page()
    assert "Confirm that erin@example.com is your email address" in visit.text()
    visit.submit("Confirm")

    # A new API key is shown once; reloading the page makes no second key and shows no secret.
    visit.click_link("API keys")
    visit.fill(name="deploy bot")
    visit.submit("Create API key")
    secret = browser.find_element(By.ID, "secret").text
    assert re.fullmatch(r"tdb_[0-9A-Za-z]{46}", secret)
    old_page = browser.find_element(By.TAG_NAME, "html")
    browser.refresh()
    visit.check_page()
    assert old_page.id != browser.find_element(By.TAG_NAME, "html").id  # it did reload
    assert secret not in browser.page_source
    assert browser.find_elements(By.ID, "secret") == []
    assert visit.text().count("deploy bot") == 1
    assert ApiKey.objects.filter(user__email=email, name="deploy bot").count() == 1

    # The account page's security log lists the login and the new key, with the browser's
    # address; at phone width too.
    visit.click_link("Account")
    events = browser.find_element(By.ID, "security-events").text
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d\s+Logged in\s+127\.0\.0\.1", events), events
    assert re.search(r"API key tdb_\w{8}… \(deploy bot\) created\s+127\.0\.0\.1", events), events
    assert events.index("deploy bot") < events.index("Logged in")  # the latest first
    visit.driver.set_window_size(*PHONE)
    visit.check_page()
    visit.driver.set_window_size(*DESKTOP)

    # The account page says two-factor is off, and leads to setting it up.
    assert re.search(r"Two-factor authentication:\s*off", visit.text())
    visit.click_link("Set it up")
    if browser.find_elements(By.NAME, "password"):  # asked to re-enter the password first
        visit.fill(password=PASSWORD)
        visit.submit("Confirm")
    totp_secret = browser.find_element(By.ID, "authenticator_secret").get_attribute("value")
    visit.fill(code=totp_code(totp_secret))
    visit.submit("Activate")
    assert re.search(r"\b[0-9a-f]{8}\b", visit.text())  # the recovery codes
    visit.open("/account/")
    assert re.search(r"Two-factor authentication:\s*on", visit.text())
    visit.submit("Log out")

    # Log in again: the code step logs in (primary), Cancel is secondary, recovery codes work.
    visit.open("/accounts/login/")
    visit.fill(login=email, password=PASSWORD)
    visit.submit("Log in")
    assert "/accounts/2fa/authenticate/" in browser.current_url
    check_wording(visit)
    assert "recovery codes works here too" in visit.text()
    kinds = buttons(visit)
    assert "secondary" not in kinds["Log in"] and "secondary" in kinds["Cancel"]
    log_in_button = browser.find_element(By.XPATH, "//button[normalize-space()='Log in']")
    cancel_button = browser.find_element(By.XPATH, "//button[normalize-space()='Cancel']")
    assert log_in_button.location["y"] < cancel_button.location["y"]
    colours = [b.value_of_css_property("background-color") for b in (log_in_button, cancel_button)]
    assert colours[0] != colours[1]  # they look different
    visit.driver.set_window_size(*PHONE)
    visit.check_page()
    visit.driver.set_window_size(*DESKTOP)

    # Wrong codes: answered "Incorrect code" up to the budget, then the 429 page saying when.
    for _ in range(CODES_PER_USER.limit):
        visit.fill(code=totp_code(totp_secret, offset=1))
        visit.submit("Log in")
        assert "Incorrect code" in visit.text()
    visit.fill(code=totp_code(totp_secret, offset=1))
    submit_refused(visit, "Log in")
    assert re.search(r"Try again in [1-5] minutes?\.", visit.text())
    visit.driver.set_window_size(*PHONE)
    visit.check_page()
    visit.driver.set_window_size(*DESKTOP)

    # The right code is refused too until the window ends.
    visit.open("/accounts/2fa/authenticate/")
    visit.fill(code=totp_code(totp_secret))
    submit_refused(visit, "Log in")
    visit.open("/buckets/")
    assert "/accounts/login/" in browser.current_url  # still not logged in
