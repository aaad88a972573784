"""Keys and values through a page: a key travels as base64url (dashboard.roundtrip), a value
keeps its line endings, and a key's invisible characters are shown. The browser's own part is
in tests/test_browser_dashboard.py; these check the server's half of each."""

from urllib.parse import quote

import pytest

from api.models import Item
from dashboard import roundtrip
from dashboard.roundtrip import key_ref
from dashboard.templatetags.key_display import plain_key, show_key

KEYS = ["nl\nkey", "tab\tkey", "crlf\r\nkey", "trailing ", " leading", "naïve ключ 🔑", "a/b?c#d"]


@pytest.mark.parametrize("key", KEYS)
def test_a_key_reference_is_url_safe_and_gives_back_the_key(key):
    ref = key_ref(key)
    assert ref.replace("-", "").replace("_", "").isalnum()
    assert roundtrip.key_from_ref(ref) == key


@pytest.mark.parametrize("ref", ["%%%", "////", "gA", ""])
def test_a_damaged_reference_is_refused_with_words_a_person_can_act_on(alice, bucket, ref):
    alice.set(bucket, "k", "v")
    response = alice.browser.get(f"/buckets/{bucket}/key/?k={ref}", follow=True)
    html = response.content.decode()
    if ref:
        assert "This link does not name a key: open the key again from the bucket" in html
    else:  # no key named: the page to add one
        assert "Add a key" in html


def test_a_person_may_still_type_a_plain_key_in_the_address(alice, bucket):
    alice.set(bucket, "greeting", "hello")
    assert "hello" in alice.browser.get(f"/buckets/{bucket}/key/?key=greeting").content.decode()
    download = alice.browser.get(f"/buckets/{bucket}/key/download/?k={key_ref('greeting')}")
    assert download.content == b"hello"


@pytest.mark.parametrize(
    "stored, submitted, ending, kept",
    [
        (b"a\nb\n", "a\r\nb\r\n", "lf", b"a\nb\n"),
        (b"a\r\nb", "a\r\nb", "crlf", b"a\r\nb"),
        (b"no break", "no break", "lf", b"no break"),
    ],
)
def test_a_value_saved_unchanged_keeps_its_bytes(alice, bucket, stored, submitted, ending, kept):
    alice.set(bucket, "k", stored)
    page = alice.browser.get(f"/buckets/{bucket}/key/?k={key_ref('k')}").content.decode()
    assert f'<option value="{ending}" selected>' in page
    response = alice.browser.post(
        f"/buckets/{bucket}/key/?k={key_ref('k')}",
        {"value": submitted, "line_endings": ending},  # what a browser sends back
    )
    assert response.status_code == 302
    assert alice.client.get(f"/v1/{bucket}/k").content == kept


def test_a_value_mixing_line_endings_says_what_saving_does(alice, bucket):
    alice.set(bucket, "k", b"unix\nwindows\r\nold mac\r")
    page = alice.browser.get(f"/buckets/{bucket}/key/?k={key_ref('k')}").content.decode()
    assert "This value mixes line endings" in page


def test_a_value_holding_nul_is_not_put_in_a_textarea(alice, bucket):
    # The HTML parser would turn NUL into U+FFFD: saving it back would change the value.
    alice.set(bucket, "k", b"text\x00more")
    page = alice.browser.get(f"/buckets/{bucket}/key/?k={key_ref('k')}").content.decode()
    assert "This value is binary" in page
    assert "text\x00more" not in page and "text\ufffdmore" not in page


def test_the_key_the_form_changes_is_the_links_never_a_posted_one(alice, bucket):
    alice.set(bucket, quote("nl\nkey", safe=""), "v")
    ref = key_ref("nl\nkey")
    alice.browser.post(f"/buckets/{bucket}/key/?k={ref}", {"key": "nlkey", "value": "new"})
    assert dict(Item.objects.values_list("key", "value")) == {"nl\nkey": b"new"}


def test_invisible_characters_of_a_key_are_shown_and_escaped():
    assert plain_key(" a\tb\nc\r\x01 ") == "␠a␉b␊c␍␁␠"
    assert plain_key("in the middle") == "in the middle"
    html = show_key("<b>\n")
    assert html == '&lt;b&gt;<span class="ctl" title="newline (LF)">␊</span>'


@pytest.mark.parametrize(
    "value, head_bytes, chars, shown",
    [
        (b"short", 5, 5, ("short", False)),
        (b"x" * 10, 10, 4, ("xxxx", True)),  # more characters than shown
        ("né".encode() * 3, 5, 10, ("nén", True)),  # the head ends inside an "é": still text
        (b"\xff\xfe" * 4, 8, 10, None),  # not UTF-8
        (b"a\x00b", 3, 10, None),  # NUL: binary, as for the key's form
    ],
)
def test_a_preview_is_the_start_of_a_text_value_from_its_first_bytes(
    value, head_bytes, chars, shown
):
    assert roundtrip.preview(value[:head_bytes], len(value), chars) == shown
