"""The bucket pages in a real browser (Debian's chromium, tests/browser.py) against gunicorn on
PostgreSQL and Redis: what the browser sends and shows, read back over the API.

- Keys holding a newline, a tab, CRLF, a trailing space or non-ASCII are opened, saved unchanged,
  edited, incremented and deleted from the page, and exactly that key changes.
- A new token is shown at the top of a page of its own, once; a reload makes no second token.
- Paging goes forward and back, numbered; the keys of a prefix are deleted after a confirmation
  that counts them; editing a value keeps its expiry.
- Every page changed here fits a phone's width (390 px) without a CSP error.
"""

import json
import urllib.request
from urllib.parse import quote

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from api.models import Token
from dashboard.roundtrip import key_ref
from tests.browser import DESKTOP, PHONE, Visit, api, screenshots_folder, signed_in_with_a_bucket
from tests.conftest import fill_keys

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def visit(live_server_url, browser, tmp_path):
    base_url, _ = live_server_url
    return Visit(browser, base_url, screenshots_folder(tmp_path))


@pytest.fixture
def alice(visit):
    """alice, logged in to the browser (her session's cookie), with a bucket."""
    return signed_in_with_a_bucket(visit, "alice")


def put(visit, person, key: str, value: bytes, ttl: int | None = None) -> None:
    query = "" if ttl is None else f"?ttl={ttl}"
    path = f"/v1/{person.bucket}/{quote(key, safe='')}{query}"
    assert api(visit.base_url, "POST", path, person.key, value) == (200, b"OK")


def stored(visit, person) -> dict[str, bytes]:
    """Every key of the bucket with its value, read over the API."""
    status, body = api(
        visit.base_url, "GET", f"/v1/{person.bucket}?values=true&format=json", person.key
    )
    assert status == 200
    return {item["key"]: item["value"].encode() for item in json.loads(body)["items"]}


def ttls(visit, person) -> dict[str, int]:
    status, body = api(
        visit.base_url, "GET", f"/v1/{person.bucket}?values=true&format=json", person.key
    )
    return {item["key"]: item["ttl"] for item in json.loads(body)["items"]}


def row_of(visit, key: str, keys: list[str]):
    """The key's row in the bucket's list (rows are in byte order)."""
    index = sorted(keys, key=lambda k: k.encode()).index(key)
    return visit.driver.find_elements(By.CSS_SELECTOR, "#key-table tbody tr")[index]


def confirm_and_follow(visit, button) -> str:
    """Click a button that asks first (data-confirm), say yes, wait for the next page; returns
    the question asked."""
    old_page = visit.driver.find_element(By.TAG_NAME, "html")
    button.click()
    alert = WebDriverWait(visit.driver, 10).until(expected_conditions.alert_is_present())
    question = alert.text
    alert.accept()
    WebDriverWait(visit.driver, 10).until(expected_conditions.staleness_of(old_page))
    visit.check_page()
    return question


# Keys a browser would change ---------------------------------------------------------------------

TARGETS = {
    "nl\nkey": b"a\nb",
    "tab\tkey": b"7",
    "crlf\r\nkey": b"one\r\ntwo",
    "trailing ": b"41",
    "naïve ключ 🔑": b"100",
}
# What a browser would turn the targets into: none of these may ever change.
DECOYS = {
    "nlkey": b"decoy 1",
    "nl key": b"decoy 2",
    "tab key": b"decoy 3",
    "crlf\nkey": b"decoy 4",
    "crlfkey": b"decoy 5",
    "trailing": b"decoy 6",
    "nl2\r\nkey": b"decoy 7",
}


def test_keys_with_newlines_tabs_and_trailing_spaces_change_exactly_on_the_page(visit, alice):
    for key, value in {**TARGETS, **DECOYS}.items():
        put(visit, alice, key, value)
    expected = {**TARGETS, **DECOYS}
    keys = list(expected)
    bucket_page = f"/buckets/{alice.bucket}/"

    def open_key(key: str) -> None:
        visit.open(bucket_page)
        visit.follow(row_of(visit, key, keys).find_element(By.CSS_SELECTOR, "a.key"))

    for key, value in TARGETS.items():
        # Open and save unchanged: the same key keeps the same bytes.
        open_key(key)
        textarea = visit.driver.find_element(By.NAME, "value")
        assert textarea.get_property("value") == value.decode().replace("\r\n", "\n")
        visit.submit("Save")
        assert stored(visit, alice) == expected, key

    # Edit: a value typed with line breaks keeps the value's line ending (LF, or CRLF).
    for key, typed, kept in [
        ("nl\nkey", "first\nsecond\n", b"first\nsecond\n"),
        ("crlf\r\nkey", "uno\ndos", b"uno\r\ndos"),
        ("naïve ключ 🔑", "100", b"100"),
    ]:
        open_key(key)
        visit.fill(value=typed)
        visit.submit("Save")
        expected[key] = kept
        assert stored(visit, alice) == expected, key

    # Increment from the list's +1.
    for key in ("tab\tkey", "trailing ", "naïve ключ 🔑"):
        visit.open(bucket_page)
        visit.follow(row_of(visit, key, keys).find_element(By.XPATH, ".//button[text()='+1']"))
        expected[key] = str(int(expected[key]) + 1).encode()
        assert stored(visit, alice) == expected, key

    # Delete each from its row; the question names the key.
    for key in TARGETS:
        visit.open(bucket_page)
        row = row_of(visit, key, keys)
        question = confirm_and_follow(
            visit, row.find_element(By.XPATH, ".//button[text()='Delete']")
        )
        assert "Delete the key" in question
        keys.remove(key)
        del expected[key]
        assert stored(visit, alice) == expected, key
    assert stored(visit, alice) == DECOYS


def test_the_key_page_names_an_invisible_character_and_deletes_that_key(visit, alice):
    put(visit, alice, "nl\nkey", b"v")
    put(visit, alice, "nlkey", b"decoy")
    visit.open(f"/buckets/{alice.bucket}/")
    assert "nl␊key" in visit.text()  # the newline is visible, not a space
    visit.follow(row_of(visit, "nl\nkey", ["nl\nkey", "nlkey"]).find_element(By.CSS_SELECTOR, "a"))
    assert visit.driver.find_element(By.ID, "key-name").text == "nl␊key"
    question = confirm_and_follow(
        visit, visit.driver.find_element(By.XPATH, "//button[text()='Delete key']")
    )
    assert question == "Delete the key “nl␊key”?"
    assert stored(visit, alice) == {"nlkey": b"decoy"}


# Tokens ------------------------------------------------------------------------------------------


def test_a_new_token_is_shown_at_the_top_once_and_a_reload_makes_no_other(visit, alice):
    for n in range(40):  # a long page: the form is far below the top
        put(visit, alice, f"user:{n:03}", b"v" * 50)
    visit.open(f"/buckets/{alice.bucket}/")
    visit.fill(prefix="user:")
    visit.follow(visit.driver.find_element(By.XPATH, "//button[text()='Create token']"))

    secret = visit.driver.find_element(By.ID, "token")
    token = secret.text
    assert secret.is_displayed()
    top = visit.driver.execute_script("return arguments[0].getBoundingClientRect().bottom", secret)
    assert top < DESKTOP[1], f"the token is {top}px down, below the window"
    assert visit.driver.find_element(By.XPATH, "//button[text()='Copy']").is_displayed()
    assert Token.objects.count() == 1
    request = urllib.request.Request(
        f"{visit.base_url}/v1/{alice.bucket}/user:001", headers={"X-Token": token}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.read() == b"v" * 50  # the token shown is the one made
    visit.driver.set_window_size(*PHONE)
    visit.check_page()
    visit.driver.set_window_size(*DESKTOP)

    visit.driver.refresh()
    visit.check_page()
    assert Token.objects.count() == 1  # no second token
    assert token not in visit.driver.page_source
    assert "A token is shown once" in visit.text()
    assert "/tokens/" not in visit.driver.current_url  # back on the bucket's page


@pytest.mark.parametrize(
    "path", ["tokens/", "settings/", "key/delete/", "key/increment/", "tokens/1/revoke/"]
)
def test_a_typed_address_of_a_form_goes_to_the_bucket_not_a_405(visit, alice, path):
    visit.open(f"/buckets/{alice.bucket}/{path}")
    assert visit.driver.current_url.split("#")[0] == f"{visit.base_url}/buckets/{alice.bucket}/"
    assert "405" not in visit.driver.title and "Keys" in visit.text()


# Paging and expiry -------------------------------------------------------------------------------


def test_paging_forward_and_back_numbers_the_keys(visit, alice):
    fill_keys(alice.bucket, 120)
    visit.open(f"/buckets/{alice.bucket}/")

    def shown() -> tuple[str, str, str]:
        keys = visit.driver.find_elements(By.CSS_SELECTOR, "a.key")
        return visit.driver.find_element(By.ID, "page-range").text, keys[0].text, keys[-1].text

    assert shown() == ("Keys 1–50 of 120", "k0000000", "k0000049")
    visit.click_link("Next")
    assert shown() == ("Keys 51–100 of 120", "k0000050", "k0000099")
    visit.click_link("Next")
    assert shown() == ("Keys 101–120 of 120", "k0000100", "k0000119")
    assert not visit.driver.find_elements(By.LINK_TEXT, "Next")
    visit.click_link("Previous")
    assert shown() == ("Keys 51–100 of 120", "k0000050", "k0000099")
    visit.click_link("Previous")
    assert shown() == ("Keys 1–50 of 120", "k0000000", "k0000049")
    assert not visit.driver.find_elements(By.LINK_TEXT, "Previous")

    visit.fill(prefix="k00001")
    visit.submit("Filter")
    assert shown() == ("Keys 1–20 starting with “k00001”", "k0000100", "k0000119")
    visit.click_link("Clear")
    assert shown()[0] == "Keys 1–50 of 120"

    # Delete the filtered keys, after a confirmation that counts them.
    visit.fill(prefix="k00001")
    visit.submit("Filter")
    visit.click_link("Delete keys with this prefix…")
    assert visit.driver.find_element(By.ID, "prefix-count").text.startswith(
        "20 keys start with “k00001”"
    )
    visit.submit("Delete 20 keys")
    assert "Deleted 20 keys starting with “k00001”." in visit.text()
    assert "No keys start with “k00001”." in visit.text()
    visit.click_link("Clear")
    assert shown() == ("Keys 1–50 of 100", "k0000000", "k0000049")
    assert len(stored(visit, alice)) == 100
    assert not any(key.startswith("k00001") for key in stored(visit, alice))


def test_editing_a_value_keeps_its_expiry(visit, alice):
    put(visit, alice, "session", b"old", ttl=120)
    put(visit, alice, "forever", b"old", ttl=0)
    visit.open(f"/buckets/{alice.bucket}/")
    visit.click_link("session")
    visit.fill(value="new")
    visit.submit("Save")
    assert stored(visit, alice)["session"] == b"new"
    assert 100 <= ttls(visit, alice)["session"] <= 120  # not the bucket's 7 days

    visit.click_link("forever")
    visit.fill(value="new")
    visit.submit("Save")
    assert ttls(visit, alice)["forever"] == 0  # still never expires

    # The list and the form say what is kept; a TTL typed is a new expiry.
    expires = [e.text for e in visit.driver.find_elements(By.CSS_SELECTOR, "td.expires")]
    assert expires[0] == "never" and expires[1] in ("in 1 minute", "in 2 minutes")
    visit.click_link("session")
    ttl = visit.driver.find_element(By.NAME, "ttl")
    assert ttl.get_attribute("value") == ""
    placeholder = ttl.get_attribute("placeholder").replace("\xa0", " ")
    assert placeholder in ("keep (in 1 minute)", "keep (in 2 minutes)")
    visit.fill(value="newer", ttl="3600")
    visit.submit("Save")
    assert 3590 <= ttls(visit, alice)["session"] <= 3600


# Labels, usage and every page at phone width ------------------------------------------------------


def test_a_bucket_label_is_set_and_changed_in_the_pages(visit, alice):
    visit.open("/buckets/")
    visit.fill(label="shop carts")
    visit.submit("Create bucket")
    bucket_id = visit.driver.find_element(By.ID, "bucket-id").text
    assert "shop carts" in visit.driver.find_element(By.TAG_NAME, "h1").text
    visit.fill(label="carts, EU")
    visit.submit("Save")
    assert "carts, EU" in visit.driver.find_element(By.TAG_NAME, "h1").text
    visit.click_link("Buckets")
    row = visit.driver.find_element(By.XPATH, f"//tr[.//a[text()='{bucket_id}']]")
    assert "carts, EU" in row.text
    # The API does not change: a bucket is still its id.
    status, body = api(visit.base_url, "GET", "/v1/?format=json", alice.key)
    assert "label" not in json.loads(body)["items"][0]


def test_a_usage_bar_shows_its_figure_anywhere_in_its_column(visit, alice):
    api(visit.base_url, "GET", f"/v1/{alice.bucket}", alice.key)
    visit.open("/usage/")
    chart = visit.driver.find_element(By.CSS_SELECTOR, "svg.chart")
    # A column of 0 requests has no bar to hover: its whole column shows its title.
    tip = visit.driver.execute_script(
        """const svg = arguments[0];
        svg.scrollIntoView();
        const box = svg.getBoundingClientRect();
        // A third down the plot, 10 hours back: far above any bar of this chart.
        const hit = document.elementFromPoint(box.left + box.width * 0.2, box.top + box.height / 3);
        const slot = hit && hit.closest('g');
        return slot && slot.querySelector('title').textContent;""",
        chart,
    )
    assert tip is not None and tip.endswith(" UTC: 0 requests"), tip
    # The current hour is marked and says it is still counting; the zone is named.
    labels = [t.text for t in chart.find_elements(By.TAG_NAME, "text")]
    assert labels[-1] == "now"
    live = chart.find_element(By.CSS_SELECTOR, "g.live title").get_attribute("textContent")
    assert live.endswith("requests so far")
    assert "Requests per hour, last 48 hours (UTC)" in visit.text()


PAGES = (
    "/buckets/",
    "/buckets/{bucket}/",
    "/buckets/{bucket}/?prefix=a%20long%20prefix%20",
    "/buckets/{bucket}/key/?k={ref}",
    "/buckets/{bucket}/key/",
    "/buckets/{bucket}/delete/",
    "/buckets/{bucket}/delete-prefix/?prefix={prefix}",
    "/usage/",
    "/docs/",
)


def test_every_page_changed_here_fits_a_phone(visit, alice):
    long_key = "a long key\twith a tab, a newline\nand no spaces:" + "x" * 120 + " "
    put(visit, alice, long_key, b"line one\nline two\r\n" * 20)
    put(visit, alice, "counter", b"41")
    visit.open("/buckets/")
    visit.fill(label="a label of a hundred characters " * 3)
    visit.submit("Create bucket")
    visit.driver.set_window_size(*PHONE)
    for path in PAGES:
        visit.open(path.format(bucket=alice.bucket, ref=key_ref(long_key), prefix=quote(long_key)))
    visit.driver.set_window_size(*DESKTOP)
