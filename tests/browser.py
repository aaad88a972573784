"""The real browser the end-to-end tests drive (Debian's chromium, by Selenium) and the server
it talks to (gunicorn serving the platform on the test database), with a `Visit` that checks every
page it opens. The tests themselves are in tests/test_browser*.py."""

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
from django.db import connection
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import RUN_PREFIX, Persona
from tests.serving import free_port

PROJECT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DESKTOP, PHONE = (1280, 900), (390, 844)


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


def signed_in_with_a_bucket(visit: Visit, username: str) -> Persona:
    """A new persona logged in to the browser (its session's cookie), with a bucket."""
    person = Persona(username)
    visit.open("/")
    visit.driver.add_cookie(
        {"name": "sessionid", "value": person.browser.cookies["sessionid"].value}
    )
    status, body = api(visit.base_url, "POST", "/v1/", person.key, b"")
    assert status == 200
    person.bucket = body.decode()
    return person
