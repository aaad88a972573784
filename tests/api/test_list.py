"""GET /v1/<bucket> (and /v1/<bucket>/): list a bucket's live keys in byte order, with limit,
values, prefix and cursor pagination, in text, json and ndjson."""

import base64
import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from api.models import Item
from tests.conftest import unversioned

UNKNOWN_BUCKET = "AAAAAAAAAAAAAAAAAAAA"


def add_keys(bucket: str, keys, value: bytes = b"v") -> None:
    """Many keys at once, straight into the table (as if set one by one through the API)."""
    Item.objects.bulk_create(Item(bucket_id=bucket, key=k, value=value) for k in keys)


def list_keys(persona, bucket: str, query: str = "") -> list[str]:
    response = persona.client.get(f"/v1/{bucket}{query}")
    assert response.status_code == 200, response.content
    text = response.content.decode()
    return text.split("\n") if text else []


def page_through(persona, bucket: str, query: str) -> tuple[list[str], int]:
    """Follow X-Next-Cursor from the first page to the last; return the keys and page count."""
    keys, cursor, pages = [], None, 0
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        response = persona.client.get(f"/v1/{bucket}?format=json&{query}{suffix}")
        assert response.status_code == 200, response.content
        body = response.json()
        pages += 1
        keys += [item["key"] for item in body["items"]]
        cursor = body["next_cursor"]
        assert response.get("X-Next-Cursor") == cursor
        if cursor is None:
            return keys, pages
        assert pages < 100, "the cursor never ends"


# Order


def test_it_lists_keys_in_utf8_byte_order(alice, bucket):
    for key in ["B", "a", "é", "Z", "a0", "ab"]:
        alice.set(bucket, key, "x")

    response = alice.client.get(f"/v1/{bucket}")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == "B\nZ\na\na0\nab\né"


def test_byte_order_beyond_the_basic_plane(alice, bucket):
    keys = ["\U0001f600", "\uffff", "\u00ff", "~", "\u0800"]
    add_keys(bucket, keys)
    assert list_keys(alice, bucket) == sorted(keys, key=lambda k: k.encode())


def test_the_listing_has_no_trailing_newline(alice, bucket):
    alice.set(bucket, "only", "x")
    assert alice.client.get(f"/v1/{bucket}").content == b"only"


def test_a_trailing_slash_lists_too(alice, bucket):
    alice.set(bucket, "foo", "x")
    alice.set(bucket, "bar", "x")
    response = alice.client.get(f"/v1/{bucket}/")
    assert response.status_code == 200
    assert response.content == b"bar\nfoo"


def test_an_empty_bucket_is_200_and_empty(alice, bucket):
    response = alice.client.get(f"/v1/{bucket}")
    assert response.status_code == 200
    assert response.content == b""
    assert "X-Next-Cursor" not in response


def test_an_empty_bucket_in_json_and_ndjson(alice, bucket):
    response = alice.client.get(f"/v1/{bucket}?format=json")
    assert response.json() == {"items": [], "next_cursor": None}
    response = alice.client.get(f"/v1/{bucket}?format=ndjson")
    assert response.status_code == 200
    assert response.content == b""


def test_expired_keys_are_not_listed(alice, bucket):
    for key in ["gone", "live", "never"]:
        alice.set(bucket, key, "x")
    alice.set(bucket, "never", "x", query="?ttl=0")
    past = timezone.now() - timedelta(seconds=1)
    Item.objects.filter(bucket_id=bucket, key="gone").update(expires_at=past)

    assert list_keys(alice, bucket) == ["live", "never"]
    assert list_keys(alice, bucket, "?values=true&format=text") == ["live\tx", "never\tx"]


def test_expired_keys_do_not_count_toward_the_limit(alice, bucket):
    add_keys(bucket, ["a", "b", "c"])
    Item.objects.filter(bucket_id=bucket, key="a").update(expires_at=timezone.now())
    response = alice.client.get(f"/v1/{bucket}?limit=2")
    assert response.content == b"b\nc"
    assert "X-Next-Cursor" not in response


def test_unknown_bucket_is_404(alice):
    response = alice.client.get(f"/v1/{UNKNOWN_BUCKET}")
    assert response.status_code == 404
    assert response.content == b"bucket not found"


def test_missing_api_key_is_403(bucket, client):
    assert client.get(f"/v1/{bucket}").status_code == 403


# limit


def test_default_limit_is_1000(alice, bucket):
    keys = [f"k{i:04d}" for i in range(1001)]
    add_keys(bucket, keys)

    response = alice.client.get(f"/v1/{bucket}")

    assert response.content.decode().split("\n") == keys[:1000]
    assert response["X-Next-Cursor"]
    rest = alice.client.get(f"/v1/{bucket}?cursor={response['X-Next-Cursor']}")
    assert rest.content == b"k1000"
    assert "X-Next-Cursor" not in rest


@pytest.mark.parametrize("limit,expected", [(1, 1), (2, 2), (4, 4), (1000, 5)])
def test_limit_caps_the_page(alice, bucket, limit, expected):
    keys = ["a", "b", "c", "d", "e"]
    add_keys(bucket, keys)
    assert list_keys(alice, bucket, f"?limit={limit}") == keys[:expected]


def test_limit_1000_returns_1000(alice, bucket):
    add_keys(bucket, [f"k{i:04d}" for i in range(1000)])
    response = alice.client.get(f"/v1/{bucket}?limit=1000")
    assert len(response.content.split(b"\n")) == 1000
    assert "X-Next-Cursor" not in response


def test_a_page_exactly_full_has_no_cursor(alice, bucket):
    add_keys(bucket, ["a", "b", "c"])
    response = alice.client.get(f"/v1/{bucket}?limit=3&format=json")
    assert response.json()["next_cursor"] is None
    assert "X-Next-Cursor" not in response


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "abc", "1.5", "", "99999999999999999999"])
def test_bad_limit_is_400(alice, bucket, limit):
    alice.set(bucket, "foo", "x")
    response = alice.client.get(f"/v1/{bucket}?limit={limit}")
    assert response.status_code == 400
    assert b"limit must be a whole number from 1 to 1000" in response.content


# values


def test_values_in_text_are_tab_separated(alice, bucket):
    alice.set(bucket, "a", "one")
    alice.set(bucket, "b", "two words")
    response = alice.client.get(f"/v1/{bucket}?values=true")
    assert response.content == b"a\tone\nb\ttwo words"


def test_values_in_json(alice, bucket):
    alice.set(bucket, "a", "one", query="?ttl=0")
    alice.set(bucket, "b", "héllo\nworld", query="?ttl=0")
    alice.set(bucket, "c", b"\xff\x00", query="?ttl=0")

    response = alice.client.get(f"/v1/{bucket}?values=true&format=json")

    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert {**body, "items": unversioned(body["items"])} == {
        "items": [
            {"key": "a", "value": "one", "ttl": 0},
            {"key": "b", "value": "héllo\nworld", "ttl": 0},
            {
                "key": "c",
                "value": base64.b64encode(b"\xff\x00").decode(),
                "encoding": "base64",
                "ttl": 0,
            },
        ],
        "next_cursor": None,
    }


def test_values_in_json_carry_the_seconds_each_key_has_left(alice, bucket):
    alice.set(bucket, "hour", "1", query="?ttl=3600")
    alice.set(bucket, "never", "2", query="?ttl=0")
    Item.objects.filter(key="hour").update(expires_at=timezone.now() + timedelta(seconds=99.2))

    items = alice.client.get(f"/v1/{bucket}?values=true&format=json").json()["items"]

    assert {item["key"]: item["ttl"] for item in items} == {"hour": 100, "never": 0}  # rounded up
    text = alice.client.get(f"/v1/{bucket}?values=true").content
    assert text == b"hour\t1\nnever\t2"  # the text listing is as the spec has it


def test_values_in_ndjson_one_item_a_line(alice, bucket):
    alice.set(bucket, "a", "one", query="?ttl=0")
    alice.set(bucket, "b", "two\nlines", query="?ttl=0")

    response = alice.client.get(f"/v1/{bucket}?values=true&format=ndjson")

    assert response["Content-Type"] == "application/x-ndjson"
    lines = response.content.decode().split("\n")
    assert lines[-1] == ""  # every line ends with a newline
    assert unversioned([json.loads(line) for line in lines[:-1]]) == [
        {"key": "a", "value": "one", "ttl": 0},
        {"key": "b", "value": "two\nlines", "ttl": 0},
    ]


@pytest.mark.parametrize("values", ["", "&values=false", "&values=0", "&values="])
def test_without_values_only_keys(alice, bucket, values):
    alice.set(bucket, "a", "secret")
    assert alice.client.get(f"/v1/{bucket}?format=text{values}").content == b"a"
    response = alice.client.get(f"/v1/{bucket}?format=json{values}")
    assert unversioned(response.json()["items"]) == [{"key": "a"}]


def test_keys_only_in_ndjson(alice, bucket):
    alice.set(bucket, "a", "secret")
    alice.set(bucket, "b", "secret")
    response = alice.client.get(f"/v1/{bucket}?format=ndjson")
    assert re.fullmatch(
        rb'{"key":"a","version":"\d+"}\n{"key":"b","version":"\d+"}\n', response.content
    )


def test_bad_values_is_400(alice, bucket):
    response = alice.client.get(f"/v1/{bucket}?values=maybe")
    assert response.status_code == 400
    assert b"values must be true or false" in response.content


# prefix


def test_prefix_limits_the_listing(alice, bucket):
    add_keys(bucket, ["user:1", "user:2", "user", "users", "admin:1", "user:\U0001f600", "v"])
    assert list_keys(alice, bucket, "?prefix=user:") == ["user:1", "user:2", "user:\U0001f600"]


def test_prefix_matching_nothing_is_empty(alice, bucket):
    add_keys(bucket, ["a", "b"])
    assert list_keys(alice, bucket, "?prefix=zzz") == []


def test_prefix_with_multibyte_characters(alice, bucket):
    add_keys(bucket, ["é1", "é2", "ê", "e"])
    assert list_keys(alice, bucket, "?prefix=%C3%A9") == ["é1", "é2"]


def test_prefix_with_values(alice, bucket):
    alice.set(bucket, "p/a", "1", query="?ttl=0")
    alice.set(bucket, "q/a", "2")
    response = alice.client.get(f"/v1/{bucket}?prefix=p/&values=true&format=json")
    assert unversioned(response.json()["items"]) == [{"key": "p/a", "value": "1", "ttl": 0}]


# Pagination


def test_paging_returns_every_key_once_in_order(alice, bucket):
    keys = [f"key-{i:02d}" for i in range(25)]
    add_keys(bucket, reversed(keys))

    seen, pages = page_through(alice, bucket, "limit=10")

    assert seen == keys
    assert pages == 3


def test_paging_in_text_follows_the_header(alice, bucket):
    keys = [f"key-{i:02d}" for i in range(25)]
    add_keys(bucket, keys)
    seen, cursor, pages = [], None, 0
    while True:
        query = "?limit=10" + (f"&cursor={cursor}" if cursor else "")
        response = alice.client.get(f"/v1/{bucket}{query}")
        pages += 1
        seen += response.content.decode().split("\n")
        cursor = response.get("X-Next-Cursor")
        if cursor is None:
            break
        assert pages < 10
    assert seen == keys
    assert pages == 3


def test_the_last_page_has_no_cursor(alice, bucket):
    add_keys(bucket, [f"k{i}" for i in range(5)])
    first = alice.client.get(f"/v1/{bucket}?limit=3&format=json")
    assert first.json()["next_cursor"] == first["X-Next-Cursor"]

    last = alice.client.get(f"/v1/{bucket}?limit=3&format=json&cursor={first['X-Next-Cursor']}")

    assert unversioned(last.json()["items"]) == [{"key": "k3"}, {"key": "k4"}]
    assert last.json()["next_cursor"] is None
    assert "X-Next-Cursor" not in last


def test_paging_with_multibyte_keys(alice, bucket):
    keys = ["a", "é", "\U0001f600", "日本", "z", "ÿ", "a/b c&d=e+f", "%2F"]
    add_keys(bucket, keys)
    seen, _ = page_through(alice, bucket, "limit=1")
    assert seen == sorted(keys, key=lambda k: k.encode())


def test_paging_with_a_prefix(alice, bucket):
    inside = [f"user:{i:02d}" for i in range(12)]
    add_keys(bucket, ["a", "user", "user;", "users:1", "zz", *inside])

    seen, pages = page_through(alice, bucket, "prefix=user:&limit=5")

    assert seen == inside
    assert pages == 3


def test_a_cursor_before_the_prefix_starts_at_the_prefix(alice, bucket):
    add_keys(bucket, ["a1", "a2", "m1", "m2"])
    cursor = alice.client.get(f"/v1/{bucket}?limit=1")["X-Next-Cursor"]  # after "a1"
    assert list_keys(alice, bucket, f"?prefix=m&cursor={cursor}") == ["m1", "m2"]


def test_a_cursor_past_the_prefix_gives_an_empty_page(alice, bucket):
    add_keys(bucket, ["a1", "m1", "z1", "z2"])
    cursor = alice.client.get(f"/v1/{bucket}?prefix=z&limit=1")["X-Next-Cursor"]  # after "z1"
    assert list_keys(alice, bucket, f"?prefix=a&cursor={cursor}") == []


def test_a_key_added_behind_the_cursor_is_not_repeated(alice, bucket):
    add_keys(bucket, ["b", "c", "d"])
    first = alice.client.get(f"/v1/{bucket}?limit=2")
    alice.set(bucket, "a", "late")
    rest = alice.client.get(f"/v1/{bucket}?limit=2&cursor={first['X-Next-Cursor']}")
    assert first.content == b"b\nc"
    assert rest.content == b"d"


@pytest.mark.parametrize(
    "cursor",
    ["not a cursor!", "_w", "AA", "%FF", "A", "****"],
    ids=["junk", "not-utf8", "nul", "bad-escape", "one-char", "stars"],
)
def test_bad_cursor_is_400(alice, bucket, cursor):
    alice.set(bucket, "foo", "x")
    response = alice.client.get(f"/v1/{bucket}?cursor={cursor}")
    assert response.status_code == 400
    assert b"cursor is not valid" in response.content


def test_bad_cursor_in_json_is_an_error_object(alice, bucket):
    response = alice.client.get(f"/v1/{bucket}?cursor=_w&format=json")
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
