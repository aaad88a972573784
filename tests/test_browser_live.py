"""Watching from a browser (Debian's chromium, tests/browser.py) on the production front (`make
serve`, tests/serving.py), which holds the streams:

- A page of another origin opens an EventSource on GET /v1/<bucket>?watch=true&token=... (an
  EventSource sends no header and no credentials) and shows a write made through the API; the
  token reaches no log of the platform.
- The bucket page, logged in through the login form, says "● live", updates a changed key's row,
  strikes a deleted key through, counts a new key in a notice; the same page read without a
  browser (no script) is the plain list.
"""

import functools
import http.server
import re
import threading
from urllib.parse import quote

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import Visit, api, screenshots_folder
from tests.conftest import PASSWORD, RUN_PREFIX, Persona
from tests.serving import free_port, request, served

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 20  # seconds a change may take to reach the page (the feed reads at least every 2 s)


@pytest.fixture
def platform(tmp_path):
    """`make serve` on the test database; yields its base URL and its log."""
    db = connection.settings_dict
    log = tmp_path / "server.log"
    with served(
        f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        log,
        THISDB_REDIS_PREFIX=f"{RUN_PREFIX}-live",
        THISDB_KEY_WRITES_PER_SECOND="0",
        LOG_LEVEL="DEBUG",  # whatever Django would log, the token must not be in it
        WEB_WORKERS="2",  # a write and a watch may meet in different processes
    ) as port:
        yield f"http://127.0.0.1:{port}", log


@pytest.fixture
def visit(platform, browser, tmp_path):
    # `browser` after `platform`: the browser quits before the server stops.
    return Visit(browser, platform[0], screenshots_folder(tmp_path))


@pytest.fixture
def alice(db):
    """alice, whose password the server can check (the tests' own hasher is a fast one)."""
    person = Persona("alice")
    person.user.password = PBKDF2PasswordHasher().encode(PASSWORD, "liveSalt0123")
    person.user.save(update_fields=["password"])
    return person


def new_bucket(base_url: str, person) -> str:
    status, body = api(base_url, "POST", "/v1/", person.key, b"")
    assert status == 200, body
    return body.decode()


def put(base_url: str, person, bucket: str, key: str, value: bytes, query: str = "") -> None:
    path = f"/v1/{bucket}/{quote(key, safe='')}{query}"
    assert api(base_url, "POST", path, person.key, value) == (200, b"OK")


def delete(base_url: str, person, bucket: str, key: str) -> None:
    path = f"/v1/{bucket}/{quote(key, safe='')}"
    assert api(base_url, "DELETE", path, person.key) == (200, b"OK")


def wait_for(driver, condition, what: str):
    return WebDriverWait(driver, WAIT).until(lambda d: condition(d), message=what)


# A page of another origin --------------------------------------------------------------------

WATCHER_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Another origin</title><link rel="icon" href="data:,">
<script src="watcher.js" defer></script></head>
<body><p id="state">starting</p><ul id="events"></ul></body></html>
"""

# The watch's URL comes in the page's fragment; every event becomes a line of the list.
WATCHER_SCRIPT = """
const state = document.getElementById("state");
const source = new EventSource(decodeURIComponent(location.hash.slice(1)));
source.onopen = () => { state.textContent = "open"; };
source.onerror = () => { state.textContent = "error"; };
for (const kind of ["put", "delete", "reset", "cancel"]) {
  source.addEventListener(kind, (event) => {
    const data = JSON.parse(event.data);
    const line = document.createElement("li");
    line.textContent = `${kind} ${data.key} ${data.value ?? data.reason}`;
    document.getElementById("events").append(line);
  });
}
"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def other_origin(tmp_path):
    """A static site on another port (so another origin) serving the watcher page."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(WATCHER_PAGE)
    (site / "watcher.js").write_text(WATCHER_SCRIPT)
    port = free_port()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), functools.partial(QuietHandler, directory=str(site))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_of_another_origin_watches_with_a_token_in_the_query_string(
    platform, visit, other_origin, alice
):
    base_url, log = platform
    bucket = new_bucket(base_url, alice)
    status, body = api(
        base_url,
        "POST",
        "/v1/tokens",
        alice.key,
        f"bucket={bucket}&prefix=user:&permissions=read&ttl=600".encode(),
    )
    assert status == 200, body
    token = body.decode()
    watch_url = f"{base_url}/v1/{bucket}?watch=true&token={token}"
    driver = visit.driver

    driver.get(f"{other_origin}/#{quote(watch_url, safe='')}")
    wait_for(driver, lambda d: d.find_element(By.ID, "state").text == "open", "the stream opens")
    put(base_url, alice, bucket, "other", b"not the token's prefix")
    put(base_url, alice, bucket, "user:1", b"hello from the API")
    delete(base_url, alice, bucket, "user:1")

    wait_for(
        driver,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#events li")) >= 2,
        "both events reach the page",
    )
    shown = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#events li")]
    assert shown == ["put user:1 hello from the API", "delete user:1 deleted"]
    assert driver.find_element(By.ID, "state").text == "open"
    problems = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert problems == [], problems

    # A wrong token is refused, and no token, right or wrong, is in the platform's log.
    wrong = "q" * 40
    port = int(base_url.rsplit(":", 1)[1])
    status, _, _ = request(port, "GET", f"/v1/{bucket}?watch=true&token={wrong}")
    assert status == 403
    text = log.read_text(errors="replace")
    assert "Forbidden" in text  # Django logged the 403 (LOG_LEVEL=DEBUG)
    assert token not in text and wrong not in text


# The bucket page ----------------------------------------------------------------------------


def log_in(visit, person) -> None:
    visit.open("/accounts/login/")
    visit.fill(login=person.email, password=PASSWORD)
    visit.submit("Log in")
    assert "/accounts/login/" not in visit.driver.current_url, visit.text()


def row(driver, key: str):
    from dashboard.roundtrip import key_ref

    return driver.find_element(By.CSS_SELECTOR, f'#key-table tr[data-ref="{key_ref(key)}"]')


def cells(driver, key: str) -> tuple[str, str, str]:
    found = row(driver, key)
    return tuple(
        found.find_element(By.CSS_SELECTOR, selector).text
        for selector in ("td.value", "td.num", "td.expires")
    )


def test_the_bucket_page_follows_its_keys_live(platform, visit, alice):
    base_url, _ = platform
    bucket = new_bucket(base_url, alice)
    put(base_url, alice, bucket, "apple", b"1", "?ttl=0")
    put(base_url, alice, bucket, "line\nbreak", b"some text")
    put(base_url, alice, bucket, "zebra", b"stays")
    driver = visit.driver
    log_in(visit, alice)
    page = f"/buckets/{bucket}/"

    visit.open(page)
    live = driver.find_element(By.ID, "live")
    wait_for(driver, lambda d: live.text == "● live", "the page says it is live")
    assert cells(driver, "apple") == ("1", "1 byte", "never")
    version = row(driver, "apple").get_attribute("data-version")
    increment = row(driver, "line\nbreak").find_element(By.CSS_SELECTOR, "form.increment")
    assert not increment.is_displayed()  # "some text" is no number

    # A change through the API: the key's row shows its new value, size, expiry and version.
    put(base_url, alice, bucket, "apple", b"2048", "?ttl=7200")
    wait_for(driver, lambda d: cells(d, "apple")[0] == "2048", "the changed value shows")
    value, size, expires = cells(driver, "apple")
    assert size == "4 bytes"
    assert re.fullmatch(r"in (2 hours|1 hour, 59 minutes)", expires), expires
    assert row(driver, "apple").get_attribute("data-version") not in (None, "", version)
    assert row(driver, "apple").find_element(By.CSS_SELECTOR, "form.increment").is_displayed()

    # A key with a newline, changed to text the other way round: its +1 shows now.
    put(base_url, alice, bucket, "line\nbreak", b"7")
    wait_for(driver, lambda d: cells(d, "line\nbreak")[0] == "7", "the newline key changes")
    assert increment.is_displayed()

    # A deletion strikes the row through; a new key on this page is counted in a notice.
    delete(base_url, alice, bucket, "zebra")
    put(base_url, alice, bucket, "banana", b"new")
    wait_for(driver, lambda d: "gone" in row(d, "zebra").get_attribute("class"), "zebra goes")
    assert cells(driver, "zebra") == ("deleted", "—", "—")
    notice = driver.find_element(By.ID, "live-notice")
    wait_for(driver, lambda d: notice.is_displayed(), "the notice shows")
    assert notice.text == "1 new key on this page since it was loaded. Reload"
    assert live.text == "● live"
    visit.shoot("bucket-live")  # also checks the page: no script error, no CSP violation
    visit.shoot("bucket-live-phone", phone=True)  # nothing wider than a phone either

    # The notice's link reloads the page: the new key is in the list, the deleted one is not.
    visit.follow(notice.find_element(By.LINK_TEXT, "Reload"))
    rows = driver.find_elements(By.CSS_SELECTOR, "#key-table tbody tr")
    keys = [r.find_element(By.CSS_SELECTOR, "a.key").text for r in rows]
    assert keys == ["apple", "banana", "line␊break"]
    wait_for(driver, lambda d: d.find_element(By.ID, "live").text == "● live", "live again")

    # The same page without a browser: the plain list, its live indicator hidden.
    session = driver.get_cookie("sessionid")["value"]
    port = int(base_url.rsplit(":", 1)[1])
    status, _, body = request(port, "GET", page, headers={"Cookie": f"sessionid={session}"})
    html = body.decode()
    assert status == 200
    assert re.search(
        r'<span id="live" class="live" role="status" hidden [^>]*>offline</span>', html
    )
    assert ">banana</a>" in html and ">apple</a>" in html


def test_the_docs_pages_browser_example_watches_from_another_origin(
    platform, visit, other_origin, alice, tmp_path
):
    """The docs page's JavaScript example of watching (a browser's EventSource with a token),
    as the page shows it, run in a page of another origin: what it logs is each change."""
    from dashboard.docs import endpoints

    base_url, _ = platform
    bucket = new_bucket(base_url, alice)
    status, body = api(
        base_url,
        "POST",
        "/v1/tokens",
        alice.key,
        f"bucket={bucket}&prefix=user:&permissions=read&ttl=600".encode(),
    )
    assert status == 200, body
    example = next(e.js for e in endpoints(base_url, bucket) if e.anchor == "watch")
    site = tmp_path / "site"  # other_origin's folder
    (site / "docs.html").write_text(
        '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        '<script src="setup.js"></script><script src="example.js" defer></script></head>'
        '<body><ul id="logged"></ul></body></html>'
    )
    # The reader's token, and console.log shown in the page.
    (site / "setup.js").write_text(
        f"window.THISDB_TOKEN = {body.decode()!r};\n"
        "console.log = (...args) => { const line = document.createElement('li');\n"
        "  line.textContent = args.join(' '); document.getElementById('logged').append(line) }\n"
        # The stream's opening, for the test to write after it (a watch starts at its opening).
        "window.EventSource = class extends EventSource { constructor (...args) {\n"
        "  super(...args); this.addEventListener('open', () => { document.title = 'open' }) } }\n"
    )
    (site / "example.js").write_text(example)
    driver = visit.driver
    driver.get(f"{other_origin}/docs.html")
    wait_for(driver, lambda d: d.title == "open", "the example's stream opens")
    put(base_url, alice, bucket, "user:42:name", b"Ada")
    delete(base_url, alice, bucket, "user:42:name")
    wait_for(
        driver,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#logged li")) >= 2,
        "the example logs both changes",
    )
    logged = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#logged li")]
    assert re.fullmatch(r"\d+ user:42:name = Ada", logged[0]), logged
    assert logged[1] == "gone: user:42:name", logged
