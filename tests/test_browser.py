"""End to end in a real browser (Debian's chromium, driven by Selenium) against the production
web server (gunicorn) on PostgreSQL and Redis: from the home page to a working API key and a
stored value without a shell; then staff find, suspend and reactivate that person.

Screenshots of the main pages go to $THISDB_SCREENSHOTS (`make screenshots` sets it to
docs/screenshots/), else to a temporary folder.
"""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import RUN_PREFIX

pytestmark = pytest.mark.django_db(transaction=True)

PROJECT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PASSWORD = "a browser's own passphrase 7"
STAFF_PASSWORD = "the staff member's passphrase 8"
DESKTOP, PHONE = (1280, 900), (390, 844)
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_server_url(tmp_path):
    """gunicorn serving the platform on the test database; its console (and so the emails it
    sends to the console backend) goes to a file the test reads."""
    port = free_port()
    db = connection.settings_dict
    log = tmp_path / "server.log"
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "THISDB_KEY_WRITES_PER_SECOND": "0",  # the test writes a key from API and page at once
        # Its own Redis keys: rate limits and email cooldowns of other runs never meet it.
        "THISDB_REDIS_PREFIX": f"{RUN_PREFIX}-browser",
        "PYTHONUNBUFFERED": "1",
    }
    with open(log, "wb") as output:
        server = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("gunicorn")),
                "thisdb_site.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--threads",
                "2",
            ],
            cwd=PROJECT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", log
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture
def browser(tmp_path):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail("install Debian's chromium and chromium-driver (.ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",  # this machine has no internet: no stray lookups
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def screenshots_folder(tmp_path) -> Path:
    folder = Path(os.environ.get("THISDB_SCREENSHOTS") or tmp_path / "screenshots")
    if not folder.is_absolute():
        folder = PROJECT / folder
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Visit:
    """The browser as a person uses it, with checks every page must pass."""

    def __init__(self, driver, base_url: str, shots: Path):
        self.driver, self.base_url, self.shots = driver, base_url, shots

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)
        self.check_page()

    def click_link(self, text: str) -> None:
        self.follow(self.driver.find_element(By.LINK_TEXT, text))

    def fill(self, **fields) -> None:
        for name, value in fields.items():
            element = self.driver.find_element(By.NAME, name)
            element.clear()
            element.send_keys(value)

    def submit(self, text: str) -> None:
        self.follow(self.driver.find_element(By.XPATH, f"//button[normalize-space()='{text}']"))

    def follow(self, element, *, submit: bool = False) -> None:
        """Click something that loads a page (or submit its form), and wait for that page: until
        the old one is gone (its readyState is still "complete" just after the click)."""
        old_page = self.driver.find_element(By.TAG_NAME, "html")
        if submit:
            element.submit()
        else:
            element.click()
        # Mid-navigation, Chrome may say the old node "does not belong to the document" rather
        # than that it is stale: ask again until it says stale.
        WebDriverWait(self.driver, 10, ignored_exceptions=[WebDriverException]).until(
            expected_conditions.staleness_of(old_page)
        )
        self.check_page()

    def text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    def check_page(self) -> None:
        """No CSP violation or script error, and nothing wider than the window."""
        WebDriverWait(self.driver, 10).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
        problems = [
            entry["message"]
            for entry in self.driver.get_log("browser")
            if entry["level"] == "SEVERE" and "favicon" not in entry["message"]
        ]
        assert problems == [], problems
        overflow = self.driver.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 1, f"{self.driver.current_url} is {overflow}px wider than the window"

    def shoot(self, name: str, *, phone: bool = False) -> None:
        width, height = PHONE if phone else DESKTOP
        self.driver.set_window_size(width, height)
        self.check_page()  # phone width must not overflow either
        full = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(width, min(max(full, height), 2400))
        self.driver.save_screenshot(str(self.shots / f"{name}.png"))
        self.driver.set_window_size(*DESKTOP)


def api(base_url: str, method: str, path: str, key: str, body: bytes | None = None):
    request = urllib.request.Request(
        base_url + path, data=body, method=method, headers={"X-Api-Key": key}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def confirmation_link(log: Path, email: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if f"To: {email}" in text:
            match = re.search(r"https?://[^\s]+/accounts/confirm-email/[^\s]+", text)
            if match:
                return match.group()
        time.sleep(0.2)
    raise AssertionError(f"no confirmation email in the server's console:\n{text[-3000:]}")


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
    visit.submit("Sign Up")
    assert "Verify Your Email Address" in visit.text()
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
    staff.save()
    EmailAddress.objects.create(user=staff, email=staff.email, verified=True, primary=True)
    visit.open("/admin/")
    assert "/accounts/login/" in browser.current_url
    visit.fill(login=staff.email, password=STAFF_PASSWORD)
    visit.submit("Sign In")
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
