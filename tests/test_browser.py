"""End to end in a real browser (Debian's chromium, driven by Selenium, tests/browser.py) against
a web server (gunicorn) on PostgreSQL and Redis: from the home page to a working API key and a
stored value without a shell; then staff find, suspend and reactivate that person.

Screenshots of the main pages go to $THISDB_SCREENSHOTS (`make screenshots` sets it to
docs/screenshots/), else to a temporary folder.
"""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from selenium.webdriver.common.by import By

from tests.browser import DESKTOP, PHONE, Visit, api, confirmation_link, screenshots_folder

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a browser's own passphrase 7"
STAFF_PASSWORD = "the staff member's passphrase 8"
SCREENSHOTS = (
    "home",
    "home-phone",
    "signup",
    "keys",
    "bucket",
    "bucket-phone",
    "usage",
    "docs",
    "staff-overview",
)


PHONE_PAGES = (
    "/",
    "/docs/",
    "/buckets/",
    "/buckets/{bucket}/",
    "/buckets/{bucket}/key/?key=greeting",
    "/buckets/{bucket}/key/",
    "/buckets/{bucket}/delete/",
    "/keys/",
    "/usage/",
    "/account/",
    "/account/delete/",
    "/accounts/email/",
    "/accounts/password/change/",
    "/accounts/2fa/",
)


def test_from_the_home_page_to_a_stored_value_then_staff_suspend_and_reactivate(
    live_server_url, browser, tmp_path
):
    base_url, log = live_server_url
    shots = screenshots_folder(tmp_path)
    visit = Visit(browser, base_url, shots)
    email = "dana@example.com"

    # Sign up and verify the email.
    visit.open("/")
    visit.shoot("home")
    visit.shoot("home-phone", phone=True)
    visit.click_link("Sign up free")
    visit.fill(email=email, password1=PASSWORD, password2=PASSWORD)
    visit.shoot("signup")
    visit.submit("Sign up")
    assert "Check your inbox" in visit.text()
    browser.get(confirmation_link(log, email))
    visit.check_page()
    visit.submit("Confirm")

    # Create an API key and read it, once.
    visit.click_link("API keys")
    visit.fill(name="my laptop")
    visit.submit("Create API key")
    secret = browser.find_element(By.ID, "secret").text
    assert re.fullmatch(r"tdb_[0-9A-Za-z]{46}", secret)
    visit.shoot("keys")
    visit.open("/keys/")
    assert secret not in browser.page_source

    # Use it over HTTP.
    status, bucket = api(base_url, "POST", "/v1/", secret, b"")
    assert status == 200
    bucket = bucket.decode()
    assert api(base_url, "POST", f"/v1/{bucket}/greeting", secret, b"hello")[0] == 200
    for n in range(12):
        api(base_url, "POST", f"/v1/{bucket}/user:{n:02}:name", secret, f"person {n}".encode())
    api(base_url, "POST", f"/v1/{bucket}/visits", secret, b"41")
    api(base_url, "POST", f"/v1/{bucket}/avatar.png", secret, bytes(range(256)))

    # See the key in the bucket page, edit it there, read the new value over HTTP.
    visit.click_link("Buckets")
    visit.click_link(bucket)
    assert "greeting" in visit.text() and "hello" in visit.text()
    visit.shoot("bucket")
    visit.shoot("bucket-phone", phone=True)
    visit.click_link("greeting")
    visit.fill(value="hello, edited in the browser")
    visit.submit("Save")
    assert api(base_url, "GET", f"/v1/{bucket}/greeting", secret) == (
        200,
        b"hello, edited in the browser",
    )

    visit.click_link("Usage")
    assert "Requests per hour" in visit.text()
    visit.shoot("usage")
    visit.click_link("Docs")
    assert f"{base_url}/v1/{bucket}" in browser.page_source
    assert secret not in browser.page_source
    visit.shoot("docs")

    # Revoke the key in the page: the API refuses it at once.
    visit.click_link("API keys")
    visit.click_link("Revoke")
    visit.submit("Revoke this key")
    status, body = api(base_url, "GET", f"/v1/{bucket}/greeting", secret)
    assert status == 403
    assert body.startswith(b"this API key has been revoked")

    # A fresh key for the staff part.
    visit.fill(name="second")
    visit.submit("Create API key")
    second = browser.find_element(By.ID, "secret").text
    assert api(base_url, "GET", f"/v1/{bucket}/greeting", second)[0] == 200
    # Every page a person uses, at phone width: nothing wider than the screen.
    visit.driver.set_window_size(*PHONE)
    for path in PHONE_PAGES:
        visit.open(path.format(bucket=bucket))
    visit.driver.set_window_size(*DESKTOP)

    visit.submit("Log out")

    # Staff find the person, suspend and reactivate them.
    staff = get_user_model().objects.create_superuser("staff", "staff@example.com")
    # Hashed as the server checks it (the test process itself uses a fast hasher).
    staff.password = PBKDF2PasswordHasher().encode(STAFF_PASSWORD, "browsersalt1234")
    staff.save()  # its email counts as verified: made as a superuser (accounts.signals)
    visit.open("/admin/")
    assert "/accounts/login/" in browser.current_url
    visit.fill(login=staff.email, password=STAFF_PASSWORD)
    visit.submit("Log in")
    visit.open("/admin/overview/")
    assert "Health" in visit.text()
    visit.shoot("staff-overview")
    visit.open("/admin/auth/user/")
    visit.fill(q=email)
    visit.follow(visit.driver.find_element(By.ID, "searchbar"), submit=True)
    row = browser.find_element(By.XPATH, f"//tr[.//a[text()='{email}']]")
    row.find_element(By.NAME, "_selected_action").click()
    browser.find_element(By.NAME, "action").send_keys("Suspend the selected accounts")
    visit.follow(browser.find_element(By.NAME, "index"))
    assert "Suspended 1 account(s)" in visit.text()
    status, body = api(base_url, "GET", f"/v1/{bucket}/greeting", second)
    assert status == 403
    assert body.startswith(b"this account is suspended")

    row = browser.find_element(By.XPATH, f"//tr[.//a[text()='{email}']]")
    row.find_element(By.NAME, "_selected_action").click()
    browser.find_element(By.NAME, "action").send_keys("Reactivate the selected accounts")
    visit.follow(browser.find_element(By.NAME, "index"))
    assert "Reactivated 1 account(s)" in visit.text()
    assert api(base_url, "GET", f"/v1/{bucket}/greeting", second) == (
        200,
        b"hello, edited in the browser",
    )
    visit.follow(browser.find_element(By.LINK_TEXT, email))
    assert "Suspended the account" in visit.text() and "Reactivated the account" in visit.text()

    for name in SCREENSHOTS:
        assert (shots / f"{name}.png").stat().st_size > 10_000, name
