"""The bucket page's "Download all" and "Import" in a real browser (Debian's chromium,
tests/browser.py) on the production front (`make serve`, tests/serving.py):

- A file of 12 MB, more than the front reads whole into memory (10 MiB: thisdb_site.asgi's
  max_body), is chosen in the form's file input, uploaded and imported; the page says how many
  keys. It reached Django as a stream (the front's bulk path): a buffered body that size is cut.
- "Download all", clicked, saves `<bucket>.ndjson` holding every key the file held; the same
  URL fetched with the session's cookie is the same NDJSON.
- A file with a bad line in the middle is imported up to that line, and the page says which line
  and what was applied; a file over the page's limit is refused with a message the browser shows
  (not a reset connection).
- The page fits a phone's width (390 px) without a CSP error.
"""

import base64
import json
import time
import urllib.request

import pytest
from django.db import connection
from selenium.webdriver.common.by import By

from tests.browser import DESKTOP, PHONE, Visit, screenshots_folder, signed_in_with_a_bucket
from tests.conftest import RUN_PREFIX
from tests.serving import served

pytestmark = pytest.mark.django_db(transaction=True)

MIB = 1024 * 1024
LIMIT = 16 * MIB  # THISDB_PAGE_IMPORT_MAX_BYTES of the server here


@pytest.fixture
def platform(tmp_path):
    """`make serve` on the test database; yields its base URL."""
    db = connection.settings_dict
    with served(
        f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        tmp_path / "server.log",
        THISDB_REDIS_PREFIX=f"{RUN_PREFIX}-bulk-page",
        THISDB_PAGE_IMPORT_MAX_BYTES=str(LIMIT),
        WEB_WORKERS="1",
    ) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def visit(platform, browser, tmp_path):
    # `browser` after `platform`: the browser quits before the server stops.
    return Visit(browser, platform, screenshots_folder(tmp_path))


@pytest.fixture
def alice(visit):
    """alice, logged in to the browser (her session's cookie), with a bucket."""
    return signed_in_with_a_bucket(visit, "alice")


def write_lines(path, lines: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as file:
        for line in lines:
            file.write(json.dumps(line) + "\n")


def import_file(visit, path) -> str:
    """Choose the file in the page's form, import it, and return the page's message."""
    visit.driver.find_element(By.ID, "import-file").send_keys(str(path))
    visit.submit("Import")
    return visit.driver.find_element(By.CSS_SELECTOR, ".messages").text


def keys_and_values(ndjson: bytes) -> dict[str, bytes]:
    pairs = {}
    for line in ndjson.splitlines():
        item = json.loads(line)
        raw = item["value"]
        pairs[item["key"]] = base64.b64decode(raw) if item.get("encoding") else raw.encode()
    return pairs


def test_a_large_file_is_imported_and_downloaded_again(visit, alice, tmp_path):
    lines = [{"key": f"key/{n:06d}", "value": "v" * 1000} for n in range(12_000)]
    lines += [
        {"key": "line\nbreak", "value": "a\nb", "ttl": 3600},
        {"key": "naïve ключ 🔑", "value": "ünïcode"},
        {
            "key": "binary",
            "value": base64.b64encode(b"\x00\xff\x80").decode(),
            "encoding": "base64",
        },
    ]
    big = tmp_path / "big.ndjson"
    write_lines(big, lines)
    assert big.stat().st_size > 11 * MIB  # the front buffers 10 MiB at most
    page = f"/buckets/{alice.bucket}/"
    visit.open(page)
    assert import_file(visit, big) == "Imported 12,003 keys from “big.ndjson”."
    assert visit.driver.current_url == visit.base_url + page

    # Clicked, the link saves the file under the bucket's name.
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    visit.driver.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    visit.driver.find_element(By.ID, "download-all").click()
    saved = downloads / f"{alice.bucket}.ndjson"
    deadline = time.monotonic() + 30
    while not saved.exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # Chrome writes to a .crdownload file, renamed at the end
    assert saved.exists(), list(downloads.iterdir())
    expected = {line["key"]: line["value"].encode() for line in lines}
    expected["binary"] = b"\x00\xff\x80"
    assert keys_and_values(saved.read_bytes()) == expected

    # The link's URL with the session's cookie: the same lines.
    link = visit.driver.find_element(By.ID, "download-all").get_attribute("href")
    cookie = visit.driver.get_cookie("sessionid")["value"]
    request = urllib.request.Request(link, headers={"Cookie": f"sessionid={cookie}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"] == "application/x-ndjson"
        disposition = f'attachment; filename="{alice.bucket}.ndjson"'
        assert response.headers["Content-Disposition"] == disposition
        body = response.read()
    assert keys_and_values(body) == expected
    first = json.loads(body.splitlines()[0])
    assert first["key"] == "binary" and first["encoding"] == "base64"  # in key order


def test_a_bad_line_and_a_file_too_large_say_so_on_the_page(visit, alice, tmp_path):
    bad = tmp_path / "bad.ndjson"
    write_lines(bad, [{"key": "a", "value": "1"}, {"key": "b"}, {"key": "c", "value": "3"}])
    visit.open(f"/buckets/{alice.bucket}/")
    message = import_file(visit, bad)
    assert message.startswith("The import of “bad.ndjson” stopped. Line 2: value must be a string")
    assert message.endswith("; lines 1 to 1 were applied (1 imported).")
    assert visit.driver.find_element(By.CSS_SELECTOR, "#key-table a.key").text == "a"

    too_large = tmp_path / "huge.ndjson"
    write_lines(too_large, [{"key": f"k{n:06d}", "value": "x" * 1000} for n in range(17_000)])
    assert too_large.stat().st_size > LIMIT
    message = import_file(visit, too_large)
    assert message.startswith("“huge.ndjson” is larger than 16.0 MB, the most this page imports")
    assert len(visit.driver.find_elements(By.CSS_SELECTOR, "#key-table tbody tr")) == 1

    # The page at a phone's width: nothing wider than the window.
    visit.driver.set_window_size(*PHONE)
    visit.open(f"/buckets/{alice.bucket}/#bulk")
    form = visit.driver.find_element(By.ID, "import-file")
    assert form.rect["x"] + form.rect["width"] <= PHONE[0]
    visit.driver.set_window_size(*DESKTOP)
