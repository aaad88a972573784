"""In a real browser (tests/browser.py): a person's page in the staff console with its Suspend
and Reactivate buttons, their confirmation and reason; the list of people at 1280 px; what a
suspended person sees; the 404 page; the Swagger UI's way back. `Visit` checks every page: no
CSP violation or script error, nothing wider than the window."""

import pytest
from allauth.account.models import EmailAddress
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from selenium.webdriver.common.by import By

from accounts.models import ApiKey
from tests.browser import DESKTOP, PHONE, Visit, api, screenshots_folder

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "the staff member's passphrase 8"


def person(email: str, username: str | None = None, *, staff: bool = False):
    """A verified person whose password the server checks (the tests' own hasher is fast)."""
    User = get_user_model()
    user = User.objects.create_user(username or email.split("@")[0], email)
    user.is_staff = user.is_superuser = staff
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, "browsersalt1234")
    user.save()
    if email:
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def log_in(visit: Visit, email: str) -> None:
    visit.open("/accounts/login/")
    visit.fill(login=email, password=PASSWORD)
    visit.submit("Log in")


def test_staff_suspend_and_reactivate_a_person_from_their_page_with_a_reason(
    live_server_url, browser, tmp_path
):
    base_url, _ = live_server_url
    visit = Visit(browser, base_url, screenshots_folder(tmp_path))
    erin = person("erin@example.com")
    _, key = ApiKey.objects.create_key(erin)
    status, bucket = api(base_url, "POST", "/v1/", key, b"")
    assert status == 200
    person("staff@example.com", staff=True)
    log_in(visit, "staff@example.com")

    visit.open(f"/admin/auth/user/{erin.pk}/change/")
    assert "Active: can log in" in visit.text()
    assert not browser.find_elements(By.NAME, "is_active")
    # The object tools beside History (the admin shows them in capitals).
    visit.follow(browser.find_element(By.CSS_SELECTOR, ".object-tools a.suspend-link"))
    assert "Suspend erin@example.com?" in visit.text()
    visit.shoot("staff-suspend-confirmation")
    visit.fill(reason="spam from this account's keys")
    visit.submit("Suspend erin@example.com")
    assert "Suspended erin@example.com." in visit.text()
    assert "Suspended since" in visit.text() and "spam from this account's keys" in visit.text()
    status, body = api(base_url, "GET", f"/v1/{bucket.decode()}", key)
    assert (status, body) == (403, b"this account is suspended: contact the platform's staff")

    reactivate = ".object-tools a.reactivate-link"
    visit.follow(browser.find_element(By.CSS_SELECTOR, reactivate))
    visit.click_link("Cancel")  # changes nothing
    assert "Suspended since" in visit.text()
    visit.follow(browser.find_element(By.CSS_SELECTOR, reactivate))
    visit.fill(reason="the owner explained")
    visit.submit("Reactivate erin@example.com")
    assert "Reactivated erin@example.com." in visit.text()
    assert api(base_url, "GET", f"/v1/{bucket.decode()}", key)[0] == 200
    messages = [e.get_change_message() for e in LogEntry.objects.order_by("action_time")]
    assert messages == [
        "Suspended the account: spam from this account's keys",
        "Reactivated the account: the owner explained",
    ]


def test_the_list_of_people_fits_1280_px_and_names_those_without_email(
    live_server_url, browser, tmp_path
):
    base_url, _ = live_server_url
    visit = Visit(browser, base_url, screenshots_folder(tmp_path))
    assert browser.get_window_size()["width"] == DESKTOP[0] == 1280
    for n in range(5):
        person(f"a.rather.long.name.for.a.person.{n}@subdomain.example-company.com")
    made_by_command = person("", username="ci-robot-made-by-createapikey")
    person("staff@example.com", staff=True)
    log_in(visit, "staff@example.com")

    visit.open("/admin/auth/user/")  # Visit asserts nothing is wider than the window
    # Nor does the table scroll sideways inside its box (the admin lets it, overflow-x: auto).
    widths = browser.execute_script(
        "const box = document.querySelector('#changelist .results');"
        "return [box.scrollWidth, box.clientWidth];"
    )
    assert widths[0] <= widths[1], f"the list is {widths[0]} px wide in a box of {widths[1]} px"
    visit.shoot("staff-people")
    visit.click_link("ci-robot-made-by-createapikey")
    assert f"/admin/auth/user/{made_by_command.pk}/change/" in browser.current_url
    assert "ci-robot-made-by-createapikey (no email)" in visit.text()


def test_a_suspended_person_who_logs_in_reads_that_and_whom_to_write(
    live_server_url, browser, tmp_path
):
    base_url, _ = live_server_url
    visit = Visit(browser, base_url, screenshots_folder(tmp_path))
    frank = person("frank@example.com")
    frank.is_active = False
    frank.save()
    log_in(visit, "frank@example.com")
    assert "This account is suspended" in visit.text()
    assert "support@localhost" in visit.text()  # THISDB_SUPPORT_EMAIL's default here
    visit.driver.set_window_size(*PHONE)
    visit.check_page()
    visit.driver.set_window_size(*DESKTOP)


def test_the_404_page_has_the_sites_navigation_and_style_and_swagger_a_way_back(
    live_server_url, browser, tmp_path
):
    base_url, _ = live_server_url
    visit = Visit(browser, base_url, screenshots_folder(tmp_path))
    browser.get(f"{base_url}/no/such/page/")
    # Chrome reports the page's own 404 status as an error; nothing else may be reported.
    reported = [entry["message"] for entry in browser.get_log("browser")]
    assert all("/no/such/page/ - Failed to load resource" in m for m in reported), reported
    visit.check_page()
    assert "Page not found" in visit.text()
    topbar = browser.find_element(By.CSS_SELECTOR, "header.topbar")
    assert topbar.value_of_css_property("border-bottom-style") == "solid"  # the stylesheet
    visit.shoot("not-found")
    visit.shoot("not-found-phone", phone=True)
    visit.click_link("API reference")
    assert browser.current_url == f"{base_url}/docs/"

    visit.open("/api/docs/")
    visit.click_link("API reference")
    assert browser.current_url == f"{base_url}/docs/"
