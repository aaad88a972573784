"""The bucket page: browse keys by prefix and cursor, preview values, add, edit, delete and
increment keys, and manage the bucket's tokens. Changes go through the API's own operations and
its one-write-per-second rule, and count against no API key's hourly requests."""

import re
import time
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from api import limits
from api.models import Item, Token
from dashboard.roundtrip import key_ref
from tests.conftest import fill_keys, token_client

TOKEN_RE = re.compile(rb"\b[a-z0-9]{40}\b")


def page(person, bucket, query=""):
    response = person.browser.get(f"/buckets/{bucket}/{query}")
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def listed_keys(html: str) -> list[str]:
    return re.findall(r'<a class="key" href="[^"]*">([^<]*)</a>', html)


# Browsing


def test_the_page_lists_keys_in_byte_order_with_a_prefix_filter(alice, bucket):
    for key in ("user:2", "user:1", "order:9", "user:10"):
        alice.set(bucket, key, "v")
    assert listed_keys(page(alice, bucket)) == ["order:9", "user:1", "user:10", "user:2"]
    assert listed_keys(page(alice, bucket, "?prefix=user:1")) == ["user:1", "user:10"]
    assert "No keys start with" in page(alice, bucket, "?prefix=nothing")


def test_next_page_follows_the_apis_cursor_over_a_million_keys(alice, bucket):
    fill_keys(bucket, 1_000_000)
    first = page(alice, bucket)
    assert listed_keys(first)[:2] == ["k0000000", "k0000001"]
    assert len(listed_keys(first)) == 50
    next_url = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = alice.browser.get(next_url).content.decode()
    assert listed_keys(second)[0] == "k0000050"
    # The cursor is the API's: the same value lists the same next page there.
    cursor = re.search(r"cursor=([\w-]+)", next_url).group(1)
    api_page = alice.client.get(f"/v1/{bucket}?limit=50&cursor={cursor}").content.decode()
    assert api_page.split("\n") == listed_keys(second)
    # Far into the bucket, by prefix, still one page.
    assert listed_keys(page(alice, bucket, "?prefix=k099999"))[-1] == "k0999999"


def test_a_bad_cursor_says_so_and_goes_back_to_the_first_page(alice, bucket):
    response = alice.browser.get(f"/buckets/{bucket}/?cursor=%%%")
    assert response.status_code == 302
    assert "Cursor is not valid" in alice.browser.get(response["Location"]).content.decode()


def test_text_values_are_shown_escaped_and_binary_ones_as_a_download(alice, bucket):
    alice.set(bucket, "html", "<script>alert(1)</script>")
    alice.set(bucket, "blob", b"\xff\x00\xfe binary")
    html = page(alice, bucket)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "binary" in html
    download = alice.browser.get(f"/buckets/{bucket}/key/download/?key=blob")
    assert download.status_code == 200
    assert download.content == b"\xff\x00\xfe binary"
    assert download["Content-Type"] == "application/octet-stream"
    assert download["Content-Disposition"].startswith("attachment")


def test_a_long_value_is_cut_in_the_list_and_whole_on_its_page(alice, bucket):
    alice.set(bucket, "long", "x" * 1000)
    assert "x" * 201 not in page(alice, bucket)
    key_page = alice.browser.get(f"/buckets/{bucket}/key/?key=long").content.decode()
    assert "x" * 1000 in key_page


def test_expired_keys_are_not_shown(alice, bucket):
    alice.set(bucket, "old", "v")
    Item.objects.filter(key="old").update(expires_at=timezone.now() - timedelta(seconds=1))
    assert "old" not in listed_keys(page(alice, bucket))
    assert alice.browser.get(f"/buckets/{bucket}/key/?key=old").status_code == 404


# Writing


def test_add_a_key_with_a_ttl_and_read_it_over_the_api(alice, bucket):
    key = "a/b?c#d e\n"
    response = alice.browser.post(
        f"/buckets/{bucket}/key/", {"key": key, "value": "héllo", "ttl": "60"}
    )
    assert response.status_code == 302
    assert alice.client.get(f"/v1/{bucket}/{quote(key, safe='')}").content == "héllo".encode()
    item = Item.objects.get(bucket_id=bucket, key=key)
    assert 55 <= (item.expires_at - item.updated_at).total_seconds() <= 60


def test_editing_a_value_keeps_its_expiry_unless_a_ttl_is_given(alice, bucket):
    alice.set(bucket, "soon", "old", query="?ttl=120")
    alice.set(bucket, "never", "old", query="?ttl=0")
    expires = Item.objects.get(bucket_id=bucket, key="soon").expires_at
    key_page = alice.browser.get(f"/buckets/{bucket}/key/?k={key_ref('soon')}").content.decode()
    assert 'placeholder="keep (in 1\xa0minute)"' in key_page or "keep (in 2" in key_page
    time.sleep(1.1)  # the expiry kept is the one the key had, not 120 s from the save
    for key in ("soon", "never"):
        response = alice.browser.post(f"/buckets/{bucket}/key/?k={key_ref(key)}", {"value": "new"})
        assert response.status_code == 302
        assert alice.client.get(f"/v1/{bucket}/{key}").content == b"new"
    kept = Item.objects.get(bucket_id=bucket, key="soon").expires_at
    assert abs((kept - expires).total_seconds()) < 1  # not the bucket's 7 days
    assert Item.objects.get(bucket_id=bucket, key="never").expires_at is None

    alice.browser.post(f"/buckets/{bucket}/key/?k={key_ref('soon')}", {"value": "v", "ttl": "0"})
    assert Item.objects.get(bucket_id=bucket, key="soon").expires_at is None


def test_a_new_key_with_a_blank_ttl_gets_the_buckets_default(alice, bucket):
    alice.browser.post(f"/buckets/{bucket}/key/", {"key": "fresh", "value": "v"})
    item = Item.objects.get(bucket_id=bucket, key="fresh")
    assert 604790 <= (item.expires_at - item.updated_at).total_seconds() <= 604800


def test_the_list_says_when_each_key_expires(alice, bucket):
    alice.set(bucket, "soon", "v", query="?ttl=125")
    alice.set(bucket, "never", "v", query="?ttl=0")
    html = page(alice, bucket)
    expires = re.findall(r'<td data-label="Expires" class="expires">([^<]*)</td>', html)
    assert expires == ["never", "in 2\xa0minutes"]  # byte order: "never" < "soon"


@pytest.mark.parametrize(
    "fields, complaint",
    [
        ({"key": ""}, "This field is required"),
        ({"key": "x" * 513}, "at most 512 characters"),
        ({"key": "é" * 300}, "a key must be 1 to 512 bytes"),
        ({"ttl": "-5"}, "greater than or equal to 0"),
        ({"ttl": "week"}, "Enter a whole number"),
    ],
)
def test_bad_input_is_a_form_error_and_stores_nothing(alice, bucket, fields, complaint):
    data = {"key": "k", "value": "v", "ttl": "", **fields}
    response = alice.browser.post(f"/buckets/{bucket}/key/", data)
    assert response.status_code == 400
    assert complaint in response.content.decode()
    assert not Item.objects.filter(bucket_id=bucket).exists()


def test_a_value_over_a_mebibyte_is_refused(alice, bucket, settings):
    settings.THISDB_VALUE_MAX_BYTES = 10
    response = alice.browser.post(f"/buckets/{bucket}/key/", {"key": "k", "value": "x" * 11})
    assert response.status_code == 400
    assert "larger than the limit of 10 bytes" in response.content.decode()
    assert not Item.objects.filter(bucket_id=bucket).exists()


def test_the_page_obeys_one_write_per_second_shared_with_the_api(alice, bucket, settings):
    settings.THISDB_KEY_WRITES_PER_SECOND = 1
    assert alice.set(bucket, "k", "from the api").status_code == 200
    response = alice.browser.post(f"/buckets/{bucket}/key/", {"key": "k", "value": "from a page"})
    assert response.status_code == 429
    assert (
        "This key was changed less than a second ago. Try again in a moment."
        in response.content.decode()
    )
    assert alice.client.get(f"/v1/{bucket}/k").content == b"from the api"
    time.sleep(1.05)
    assert (
        alice.browser.post(
            f"/buckets/{bucket}/key/", {"key": "k", "value": "from a page"}
        ).status_code
        == 302
    )
    assert alice.set(bucket, "k", "api again").status_code == 429  # the page's write counts


def test_pages_count_against_no_api_keys_hourly_requests(alice, bucket):
    alice.client.get(f"/v1/{bucket}")
    before = limits.current_counts(alice.user.pk, [alice.api_key.pk])[alice.api_key.pk]
    alice.browser.post(f"/buckets/{bucket}/key/", {"key": "k", "value": "v"})
    page(alice, bucket)
    alice.browser.post(f"/buckets/{bucket}/key/increment/", {"k": key_ref("n"), "by": "2"})
    assert limits.current_counts(alice.user.pk, [alice.api_key.pk])[alice.api_key.pk] == before


def test_delete_a_key(alice, bucket):
    alice.set(bucket, "k", "v")
    response = alice.browser.post(f"/buckets/{bucket}/key/delete/", {"k": key_ref("k")})
    assert response.status_code == 302
    assert alice.client.get(f"/v1/{bucket}/k").status_code == 404
    again = alice.browser.post(f"/buckets/{bucket}/key/delete/", {"k": key_ref("k")}, follow=True)
    assert "Key not found." in again.content.decode()


def test_increment_a_counter_and_refuse_a_non_number(transactional_db, alice, bucket):
    # transactional_db: the refused statement would abort a test-wide transaction.
    alice.set(bucket, "n", "40")
    alice.set(bucket, "word", "hello")
    response = alice.browser.post(
        f"/buckets/{bucket}/key/increment/", {"k": key_ref("n"), "by": "2"}, follow=True
    )
    assert "“n” is now 42." in response.content.decode()
    assert alice.client.get(f"/v1/{bucket}/n").content == b"42"
    response = alice.browser.post(
        f"/buckets/{bucket}/key/increment/", {"k": key_ref("word"), "by": "1"}, follow=True
    )
    assert "not an integer" in response.content.decode()
    assert alice.client.get(f"/v1/{bucket}/word").content == b"hello"


def test_the_key_quota_is_the_apis(alice, bucket, settings):
    settings.THISDB_MAX_KEYS_PER_BUCKET = 1
    alice.set(bucket, "k", "v")
    from api.rollups import refresh_stored_figures

    refresh_stored_figures(timezone.now())
    response = alice.browser.post(f"/buckets/{bucket}/key/", {"key": "new", "value": "v"})
    assert response.status_code == 403
    assert "Key quota reached" in response.content.decode()
    assert (
        alice.browser.post(
            f"/buckets/{bucket}/key/?key=k", {"key": "k", "value": "changed"}
        ).status_code
        == 302
    )


# Tokens


def test_create_a_token_shown_once_that_works_on_the_api(alice, bucket):
    alice.set(bucket, "user:1:name", "ann")
    response = alice.browser.post(
        f"/buckets/{bucket}/tokens/",
        {"prefix": "user:1:", "read": "on", "ttl": "600", "api_key": alice.api_key.pk},
    )
    assert response.status_code == 303
    assert not TOKEN_RE.search(response.content)
    shown = alice.browser.get(response["Location"])
    assert shown.status_code == 200
    assert "no-store" in shown["Cache-Control"]
    token = TOKEN_RE.search(shown.content).group().decode()
    row = Token.objects.get()
    assert f"Your new token #{row.pk}" in shown.content.decode()
    assert token_client(token).get(f"/v1/{bucket}/user:1:name").content == b"ann"
    refused = token_client(token).post(f"/v1/{bucket}/user:1:x", "v", content_type="text/plain")
    assert refused.status_code == 403  # a read token
    listing = page(alice, bucket)
    assert token not in listing
    assert "user:1:" in listing and "in 9\xa0minutes" in listing


def test_a_token_needs_a_permission_and_a_key_of_mine(alice, bob, bucket):
    base = {"prefix": "", "ttl": "60"}
    no_permission = alice.browser.post(
        f"/buckets/{bucket}/tokens/", {**base, "api_key": alice.api_key.pk}
    )
    assert no_permission.status_code == 400
    assert "Give the token read, write or both" in no_permission.content.decode()
    bobs_key = alice.browser.post(
        f"/buckets/{bucket}/tokens/", {**base, "read": "on", "api_key": bob.api_key.pk}
    )
    assert bobs_key.status_code == 400
    assert "Select a valid choice" in bobs_key.content.decode()
    too_long = alice.browser.post(
        f"/buckets/{bucket}/tokens/",
        {**base, "read": "on", "ttl": "86401", "api_key": alice.api_key.pk},
    )
    assert too_long.status_code == 400
    assert not Token.objects.exists()


def test_a_read_only_key_cannot_be_chosen_for_a_token(alice, bucket):
    reader, _ = ApiKey.objects.create_key(alice.user, name="reader", read_only=True)
    response = alice.browser.post(
        f"/buckets/{bucket}/tokens/",
        {"prefix": "", "read": "on", "ttl": "60", "api_key": reader.pk},
    )
    assert response.status_code == 400
    assert not Token.objects.exists()


def test_revoke_a_token_stops_it_at_once(alice, bucket):
    token = alice.token(bucket, "", "read")
    assert token_client(token).get(f"/v1/{bucket}").status_code == 200  # cached
    row = Token.objects.get()
    response = alice.browser.post(f"/buckets/{bucket}/tokens/{row.pk}/revoke/")
    assert response.status_code == 302
    response = token_client(token).get(f"/v1/{bucket}")
    assert response.status_code == 403
    assert not Token.objects.exists()


def test_another_accounts_token_is_a_404(alice, bob, bucket):
    bob_bucket = bob.new_bucket()
    bob.token(bob_bucket, "", "read")
    row = Token.objects.get()
    assert alice.browser.post(f"/buckets/{bucket}/tokens/{row.pk}/revoke/").status_code == 404
    assert alice.browser.post(f"/buckets/{bob_bucket}/tokens/{row.pk}/revoke/").status_code == 404
    assert Token.objects.filter(pk=row.pk).exists()


def test_plus_one_twice_within_a_second_says_so_as_a_person_would(alice, bucket, settings):
    settings.THISDB_KEY_WRITES_PER_SECOND = 1
    alice.set(bucket, "n", "1")
    time.sleep(1.05)  # the API's write above holds the key for a second
    increment = {"k": key_ref("n"), "by": "1"}
    alice.browser.post(f"/buckets/{bucket}/key/increment/", increment)
    again = alice.browser.post(f"/buckets/{bucket}/key/increment/", increment, follow=True)
    html = again.content.decode()
    assert "This key was changed less than a second ago. Try again in a moment." in html
    assert "written less than a second ago" not in html  # not the API's own words
    assert alice.client.get(f"/v1/{bucket}/n").content == b"2"


def test_the_new_token_waits_in_the_session_only_until_shown(alice, bucket):
    response = alice.browser.post(
        f"/buckets/{bucket}/tokens/",
        {"prefix": "", "read": "on", "ttl": "600", "api_key": alice.api_key.pk},
    )
    assert response.status_code == 303
    # Never in a cookie: the browser holds only the session's id.
    assert all(not TOKEN_RE.search(c.value.encode()) for c in alice.browser.cookies.values())
    token = TOKEN_RE.search(alice.browser.get(response["Location"]).content).group()
    assert not any(token.decode() in str(v) for v in alice.browser.session.values())
    reload = alice.browser.get(response["Location"], follow=True)
    assert token not in reload.content
    assert "A token is shown once" in reload.content.decode()
    assert Token.objects.count() == 1


def test_a_session_kept_in_a_cookie_fails_the_checks(settings):
    from dashboard.checks import check_session_is_server_side

    assert check_session_is_server_side(None) == []  # the database engine of our settings
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    assert [e.id for e in check_session_is_server_side(None)] == ["dashboard.E001"]


def test_token_rows_show_their_id_never_the_secret(alice, bucket):
    token = alice.token(bucket, "user:", "read")
    row = Token.objects.get()
    html = page(alice, bucket)
    assert f'<td data-label="Token">#{row.pk} ' in html
    assert f'data-confirm="Revoke token #{row.pk}? It stops working at once."' in html
    assert token not in html


@pytest.mark.parametrize(
    "path", ["settings/", "key/delete/", "key/increment/", "tokens/", "tokens/1/revoke/"]
)
def test_a_get_on_a_forms_address_goes_to_the_bucket(alice, bucket, path):
    response = alice.browser.get(f"/buckets/{bucket}/{path}")
    assert response.status_code == 302
    assert response["Location"].split("#")[0] == f"/buckets/{bucket}/"


def test_previous_pages_back_and_past_the_end_says_no_more_keys(alice, bucket):
    fill_keys(bucket, 60)
    html = page(alice, bucket, f"?cursor={key_ref('k0000049')}&n=51")
    assert listed_keys(html) == [f"k{n:07}" for n in range(50, 60)]
    assert "Keys 51–60 of 60" in html
    previous = re.search(r'href="([^"]+)" rel="prev"', html).group(1).replace("&amp;", "&")
    assert listed_keys(alice.browser.get(previous).content.decode())[0] == "k0000000"
    past = page(alice, bucket, f"?cursor={key_ref('k0000059')}&n=61")
    assert "No more keys." in past and 'rel="prev"' in past
    bad = alice.browser.get(f"/buckets/{bucket}/?before=%%%", follow=True)
    assert "Cursor is not valid" in bad.content.decode()


def test_a_prefix_filter_has_a_clear_link(alice, bucket):
    assert ">Clear</a>" not in page(alice, bucket)
    html = page(alice, bucket, "?prefix=user:")
    assert f'<a class="button secondary" href="/buckets/{bucket}/">Clear</a>' in html


def test_the_delete_prompt_names_the_key(alice, bucket):
    alice.set(bucket, "user:1", "v")
    assert 'data-confirm="Delete the key “user:1”?"' in page(alice, bucket)
    key_page = alice.browser.get(f"/buckets/{bucket}/key/?k={key_ref('user:1')}")
    assert 'data-confirm="Delete the key “user:1”?"' in key_page.content.decode()
