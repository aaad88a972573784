"""POST /v1/<bucket> with many keys: an NDJSON body or Workers KV's JSON array (api.imports),
written in batches (api.writes.import_items), through the WSGI application. The production
server's part (a watcher, a client that leaves) is in test_import_served.py."""

import base64
import json
import time

import pytest
from django.db import connection

from accounts.models import Account
from api import history, principals, scoping
from api.models import Bucket, Item
from api.writes import IMPORT_BATCH_LINES
from tests.conftest import Persona, token_client, unversioned

NDJSON = "application/x-ndjson"


def ndjson(lines) -> bytes:
    """An NDJSON body: dicts as JSON, bytes as they are, one a line."""
    return b"".join(
        (line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines
    )


def post(client, bucket: str, body: bytes, content_type: str = NDJSON, query: str = "?format=json"):
    return client.post(f"/v1/{bucket}{query}", body, content_type=content_type)


def listing(client, bucket: str) -> list[dict]:
    """Every key of the bucket with its value and ttl (without versions), a page at a time."""
    items, cursor = [], ""
    while True:
        page = client.get(f"/v1/{bucket}?format=json&values=true{cursor}").json()
        items += page["items"]
        if not page["next_cursor"]:
            return items
        cursor = f"&cursor={page['next_cursor']}"


def stored(bucket: str) -> dict[str, bytes]:
    rows = Item.objects.filter(bucket_id=bucket).values_list("key", "value")
    return {key: bytes(value) for key, value in rows}


def numbered(count: int, start: int = 0) -> list[dict]:
    return [{"key": f"k{n:05d}", "value": f"v{n}"} for n in range(start, start + count)]


def set_quota(persona: Persona, **figures) -> None:
    """Account figures as beat would leave them, seen by the next request."""
    Account.objects.filter(user=persona.user).update(**figures)
    principals.forget_all()
    scoping.forget_all()


# What an import writes.

AWKWARD = [
    {"key": "text", "value": "héllo wörld", "ttl": 0},
    {"key": "bytes", "value": base64.b64encode(b"\x00\xff\x80\n").decode(), "encoding": "base64"},
    {"key": "line\nbreak\r\n", "value": "a\nb", "ttl": 0},
    {"key": "ключ 🔑", "value": "", "ttl": 3600},
    {"key": " spaced ", "value": "\u0000 nul in a value", "ttl": 0},
    {"key": "%2F/slash", "value": "v", "encoding": None, "ttl": 0},
]


def test_an_ndjson_import_writes_every_line_as_a_single_write_would(alice, bucket):
    response = post(alice.client, bucket, ndjson(AWKWARD))
    assert response.status_code == 200, response.content
    assert response.json() == {"imported": len(AWKWARD)}
    assert stored(bucket) == {
        "text": "héllo wörld".encode(),
        "bytes": b"\x00\xff\x80\n",
        "line\nbreak\r\n": b"a\nb",
        "ключ 🔑": b"",
        " spaced ": b"\x00 nul in a value",
        "%2F/slash": b"v",
    }


def test_an_export_imports_as_it_is_into_another_bucket(alice, bucket):
    """The listing's lines (an export's) carry versions and ttls: imported as they are, the
    other bucket lists the same keys, values and expiries."""
    assert post(alice.client, bucket, ndjson(AWKWARD)).status_code == 200
    exported = alice.client.get(f"/v1/{bucket}?format=ndjson&values=true").content
    assert b'"version"' in exported
    other = alice.new_bucket()
    response = post(alice.client, other, exported)
    assert response.status_code == 200 and response.json() == {"imported": len(AWKWARD)}
    source, copy = (
        unversioned(listing(alice.client, bucket)),
        unversioned(listing(alice.client, other)),
    )
    assert [(i["key"], i["value"], i.get("encoding")) for i in copy] == [
        (i["key"], i["value"], i.get("encoding")) for i in source
    ]
    # A ttl moves by at most the second the copy took.
    assert all(abs(a["ttl"] - b["ttl"]) <= 1 for a, b in zip(source, copy, strict=True))
    assert {i["ttl"] for i in copy if i["key"] == "ключ 🔑"} <= {3599, 3600}


def test_a_line_without_ttl_gets_the_buckets_default_and_every_write_a_new_version(alice):
    bucket = alice.new_bucket(default_ttl=600)
    alice.set(bucket, "old", "1")
    before = Item.objects.get(bucket_id=bucket, key="old").version
    assert post(alice.client, bucket, ndjson([{"key": "old", "value": "2"}])).status_code == 200
    item = Item.objects.get(bucket_id=bucket, key="old")
    assert bytes(item.value) == b"2" and item.version > before
    assert 590 <= listing(alice.client, bucket)[0]["ttl"] <= 600


def test_blank_lines_are_skipped_and_a_last_line_needs_no_newline(alice, bucket):
    body = b'\n{"key": "a", "value": "1"}\r\n   \n\n{"key": "b", "value": "2"}'
    response = post(alice.client, bucket, body)
    assert response.json() == {"imported": 2}
    assert stored(bucket) == {"a": b"1", "b": b"2"}


def test_a_key_on_two_lines_of_a_batch_is_written_once_with_the_later_line(alice, bucket):
    response = post(alice.client, bucket, ndjson([{"key": "k", "value": str(n)} for n in range(5)]))
    assert response.json() == {"imported": 5}
    assert stored(bucket) == {"k": b"4"}


def test_an_import_larger_than_a_batch_is_written_whole(alice, bucket):
    lines = numbered(2 * IMPORT_BATCH_LINES + 345)
    response = post(alice.client, bucket, ndjson(lines))
    assert response.json() == {"imported": len(lines)}
    assert stored(bucket) == {line["key"]: line["value"].encode() for line in lines}


@pytest.mark.parametrize("answer_format", ["json", "ndjson", "text"])
def test_the_answer_is_the_count_in_each_format(alice, bucket, answer_format):
    response = post(alice.client, bucket, ndjson(numbered(3)), query=f"?format={answer_format}")
    assert response.status_code == 200
    assert (
        response.content
        == {
            "json": b'{"imported":3}',
            "ndjson": b'{"imported":3}\n',
            "text": b"3",
        }[answer_format]
    )


def test_an_empty_body_imports_nothing(alice, bucket):
    # (Django's test client drops the Content-Type of an empty body: one blank line instead.)
    assert post(alice.client, bucket, b"\n").json() == {"imported": 0}
    assert post(alice.client, bucket, b"[]", "application/json").json() == {"imported": 0}


# A line that cannot be written: what comes before it is applied, nothing after it.

BAD_LINES = [
    (b"not json", "not valid JSON: each line must be a JSON object"),
    (b'["key", "value"]', "each line must be a JSON object"),
    (b'{"value": "v"}', "key must be a string"),
    (b'{"key": "", "value": "v"}', "a key must be 1 to 512 bytes"),
    (json.dumps({"key": "k" * 513, "value": "v"}).encode(), "a key must be 1 to 512 bytes"),
    (b'{"key": "a\\u0000b", "value": "v"}', "a key cannot contain the NUL character"),
    (b'{"key": "\\ud800", "value": "v"}', "a key must be valid UTF-8"),
    (b'{"key": "k"}', "value must be a string"),
    (b'{"key": "k", "value": "%%%", "encoding": "base64"}', "value is not valid base64"),
    (b'{"key": "k", "value": "v", "encoding": "hex"}', 'encoding must be "base64"'),
    (b'{"key": "k", "value": "v", "ttl": -1}', "ttl must be a whole number of seconds"),
    (b'{"key": "k", "value": "v", "ttl": 1.5}', "ttl must be a whole number of seconds"),
    (b'{"key": "k", "value": "v", "expiration_ttl": 60}', "unknown fields expiration_ttl"),
    (b'{"key": "k", "value": NaN}', "not valid JSON"),
    (b'{"key": "k", "value": "v"', "not valid JSON"),
    (b'{"key": "k", "value": "\xff"}', "not valid UTF-8"),
]


@pytest.mark.parametrize("bad, says", BAD_LINES)
def test_a_bad_line_is_400_naming_it_after_applying_the_lines_before_it(alice, bucket, bad, says):
    lines = [*numbered(1500), bad, *numbered(500, start=1500)]
    response = post(alice.client, bucket, ndjson(lines))
    assert response.status_code == 400
    answer = response.json()
    assert answer["error"].startswith(f"line 1501: {says}"), answer
    assert answer["error"].endswith("; lines 1 to 1500 were applied (1500 imported)")
    assert (answer["line"], answer["applied"], answer["imported"]) == (1501, 1500, 1500)
    assert stored(bucket) == {line["key"]: line["value"].encode() for line in lines[:1500]}


def test_a_value_over_the_limit_is_a_bad_line(alice, bucket, settings):
    settings.THISDB_VALUE_MAX_BYTES = 10
    lines = [{"key": "a", "value": "x" * 10}, {"key": "b", "value": "x" * 11}]
    response = post(alice.client, bucket, ndjson(lines))
    assert response.status_code == 400
    assert response.json()["error"] == (
        "line 2: the value is larger than the limit of 10 bytes; lines 1 to 1 were applied "
        "(1 imported)"
    )
    assert stored(bucket) == {"a": b"x" * 10}


def test_a_line_far_over_any_value_is_refused_before_it_is_held_whole(alice, bucket, settings):
    settings.THISDB_VALUE_MAX_BYTES = 10
    response = post(alice.client, bucket, b'{"key": "a", "value": "' + b"x" * 200_000)
    assert response.status_code == 400
    assert response.json()["error"].startswith("line 1: this line is longer than")


def test_the_text_format_says_it_in_words_and_a_first_bad_line_applies_nothing(alice, bucket):
    response = post(alice.client, bucket, b"nope\n", query="")
    assert response.status_code == 400
    assert response.content.decode() == (
        'line 1: not valid JSON: each line must be a JSON object {"key", "value", "encoding"?, '
        '"ttl"?}; nothing was applied'
    )


def test_a_blank_line_counts_in_the_numbering(alice, bucket):
    response = post(alice.client, bucket, b'{"key": "a", "value": "1"}\n\n\nbad\n')
    answer = response.json()
    assert (answer["line"], answer["applied"], answer["imported"]) == (4, 3, 1)
    assert stored(bucket) == {"a": b"1"}


# Workers KV's bulk format: a JSON array.


def test_a_json_array_imports_workers_kv_items(alice, bucket):
    soon = int(time.time()) + 3600
    items = [
        {"key": "plain", "value": "text"},
        {"key": "bin", "value": base64.b64encode(b"\xff\x00").decode(), "base64": True},
        {"key": "not-b64", "value": "aGk=", "base64": False, "expiration_ttl": 0},
        {"key": "ttl", "value": "v", "expiration_ttl": 120},
        {"key": "at", "value": "v", "expiration": soon, "metadata": None},
    ]
    body = json.dumps(items, indent=2).encode()  # whitespace anywhere between items
    response = post(alice.client, bucket, body, "application/json")
    assert response.status_code == 200, response.content
    assert response.json() == {"imported": 5}
    assert stored(bucket) == {
        "plain": b"text",
        "bin": b"\xff\x00",
        "not-b64": b"aGk=",
        "ttl": b"v",
        "at": b"v",
    }
    ttls = {item["key"]: item["ttl"] for item in listing(alice.client, bucket)}
    assert ttls["not-b64"] == 0 and 119 <= ttls["ttl"] <= 120 and 3598 <= ttls["at"] <= 3600
    assert ttls["plain"] > 0  # the bucket's default (7 days), as a single write without ?ttl=


def test_a_large_array_in_small_reads_is_parsed_item_by_item(alice, bucket, monkeypatch):
    from api import imports

    monkeypatch.setattr(imports, "READ_CHUNK", 7)  # items and escapes cut anywhere
    items = [{"key": f"k{n}", "value": f'é\\"{n}'} for n in range(300)]
    response = post(alice.client, bucket, json.dumps(items).encode(), "application/json")
    assert response.json() == {"imported": 300}
    assert stored(bucket) == {item["key"]: item["value"].encode() for item in items}


BAD_ITEMS = [
    (b'{"key": "k", "value": "v", "metadata": {"a": 1}}', "metadata is not supported"),
    (b'{"key": "k", "value": "%%", "base64": true}', "value is not valid base64"),
    (b'{"key": "k", "value": "v", "base64": "yes"}', "base64 must be true or false"),
    (b'{"key": "k", "value": "v", "expiration": 1}', "expiration 1 is not in the future"),
    (b'{"key": "k", "value": "v", "expiration": 1, "expiration_ttl": 60}', "give expiration"),
    (b'{"key": "k", "value": "v", "expiration_ttl": -5}', "expiration_ttl must be a whole"),
    (b'{"key": "k", "value": "v", "ttl": 5}', "unknown fields ttl"),
    (b'"just a string"', "each item must be an object"),
    (b'{"key": "k", "value": "v"', "not valid JSON"),
    (b'{"key": "k" "value": "v"}', "not valid JSON"),
]


@pytest.mark.parametrize("bad, says", BAD_ITEMS)
def test_a_bad_item_is_400_naming_it_after_applying_the_items_before_it(alice, bucket, bad, says):
    good = [json.dumps(item).encode() for item in numbered(1200)]
    body = b"[" + b",".join([*good, bad, *good[:3]]) + b"]"
    response = post(alice.client, bucket, body, "application/json")
    assert response.status_code == 400
    answer = response.json()
    assert answer["error"].startswith(f"item 1201: {says}"), answer
    assert answer["error"].endswith("; items 1 to 1200 were applied (1200 imported)")
    assert (answer["item"], answer["applied"], answer["imported"]) == (1201, 1200, 1200)
    assert len(stored(bucket)) == 1200


@pytest.mark.parametrize(
    "body, says",
    [
        (b'[{"key": "a", "value": "1"},]', "item 2: an array cannot end with a comma"),
        (b'[{"key": "a", "value": "1"} {"key": "b"}]', "item 2: expected , or ]"),
        (b'[{"key": "a", "value": "1"}] x', "item 2: nothing may follow the array's closing ]"),
        (b'[{"key": "a", "value": "1"}', "item 2: expected , or ]"),
    ],
)
def test_a_malformed_array_is_400_after_the_items_before(alice, bucket, body, says):
    response = post(alice.client, bucket, body, "application/json")
    assert response.status_code == 400
    assert response.json()["error"].startswith(says)
    assert stored(bucket) == {"a": b"1"}


def test_a_json_object_is_still_a_transaction(alice, bucket):
    body = json.dumps({"ops": [{"op": "set", "key": "a", "value": "1"}]}).encode()
    response = post(alice.client, bucket, b"  \n" + body, "application/json")
    assert response.status_code == 200 and response.json()["ok"] is True


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (ndjson(numbered(3)), NDJSON),
        (ndjson(numbered(1)), NDJSON),  # one line: a JSON object, not a transaction's
        (json.dumps(numbered(3)).encode(), "application/json"),
    ],
)
def test_with_bulk_off_an_import_is_read_as_a_transaction_and_refused(
    alice, bucket, settings, body, content_type
):
    """THISDB_BULK=false: the server answers as one without imports, a 400 naming no line
    (nothing applied), which tells a client to write key by key."""
    settings.THISDB_BULK = False
    response = post(alice.client, bucket, body, content_type)
    assert response.status_code == 400
    answer = response.json()
    assert "line" not in answer and "item" not in answer and "imported" not in answer
    assert answer["error"].startswith(("the body must be a JSON object", "the body: unknown"))
    assert stored(bucket) == {}
    transaction = json.dumps({"ops": [{"op": "set", "key": "a", "value": "1"}]}).encode()
    response = post(alice.client, bucket, transaction, NDJSON)  # its type is no matter now
    assert response.status_code == 200 and response.json()["ok"] is True
    assert stored(bucket) == {"a": b"1"}


def test_with_bulk_off_a_body_over_the_transaction_limit_is_a_413(alice, bucket, settings):
    settings.THISDB_BULK = False
    settings.THISDB_TRANSACTION_MAX_BYTES = 1000
    response = post(alice.client, bucket, ndjson(numbered(100)))
    assert response.status_code == 413
    assert "the transaction is larger than the limit of 1000 bytes" in response.json()["error"]
    assert stored(bucket) == {}


# The rules of a single write.


def test_an_import_over_the_key_quota_stops_at_the_first_new_key_past_it(alice, bucket):
    for key in ("a", "b", "c"):
        alice.set(bucket, key, "old")
    set_quota(alice, max_keys_per_bucket=5)
    Bucket.objects.filter(id=bucket).update(key_count=3)  # as beat counted
    lines = [{"key": key, "value": "new"} for key in ("a", "n1", "b", "n1", "n2", "c", "n3", "a")]
    response = post(alice.client, bucket, ndjson(lines))
    assert response.status_code == 403
    answer = response.json()
    assert answer["error"].startswith("line 7: key quota reached: this bucket holds 5 keys")
    assert answer["error"].endswith("; lines 1 to 6 were applied (6 imported)")
    assert (answer["line"], answer["applied"]) == (7, 6)
    assert stored(bucket) == {k: b"new" for k in ("a", "b", "c", "n1", "n2")}


def test_an_import_over_the_key_quota_counts_keys_created_by_its_earlier_batches(alice, bucket):
    set_quota(alice, max_keys_per_bucket=IMPORT_BATCH_LINES + 10)
    response = post(alice.client, bucket, ndjson(numbered(IMPORT_BATCH_LINES + 20)))
    assert response.status_code == 403
    assert response.json()["line"] == IMPORT_BATCH_LINES + 11
    assert Item.objects.filter(bucket_id=bucket).count() == IMPORT_BATCH_LINES + 10


def test_an_account_at_its_storage_quota_imports_nothing(alice, bucket):
    set_quota(alice, max_stored_bytes=100, stored_bytes=100)
    response = post(alice.client, bucket, ndjson(numbered(3)))
    assert response.status_code == 403
    assert response.json()["error"].startswith("line 1: storage quota reached")
    assert stored(bucket) == {}


def test_an_import_stops_at_the_batch_that_finds_the_storage_quota_reached(alice, bucket):
    set_quota(alice, max_stored_bytes=10_000)
    lines = [{"key": f"k{n:04d}", "value": "x" * 10} for n in range(2 * IMPORT_BATCH_LINES)]
    response = post(alice.client, bucket, ndjson(lines))
    assert response.status_code == 403
    assert response.json()["line"] == IMPORT_BATCH_LINES + 1  # the first batch wrote 15,000 bytes
    assert Item.objects.filter(bucket_id=bucket).count() == IMPORT_BATCH_LINES


def test_a_token_imports_only_inside_its_prefix(alice, bucket):
    client = token_client(alice.token(bucket, "pub:"))
    lines = [{"key": "pub:a", "value": "1"}, {"key": "priv:b", "value": "2"}]
    response = post(client, bucket, ndjson(lines))
    assert response.status_code == 403
    assert response.json()["error"] == (
        "line 2: this token only covers keys starting with 'pub:'; lines 1 to 1 were applied "
        "(1 imported)"
    )
    assert stored(bucket) == {"pub:a": b"1"}


def test_a_token_without_write_and_a_read_only_key_import_nothing(alice, bucket):
    reader = token_client(alice.token(bucket, "", permissions="read"))
    response = post(reader, bucket, ndjson(numbered(1)))
    assert response.status_code == 403 and "no write permission" in response.json()["error"]
    alice.api_key.read_only = True
    alice.api_key.save()
    principals.forget_all()
    response = post(alice.client, bucket, ndjson(numbered(1)))
    assert response.status_code == 403 and "read-only" in response.json()["error"]
    assert stored(bucket) == {}


def test_another_accounts_bucket_is_404_and_its_keys_untouched(alice, bob, bucket):
    alice.set(bucket, "k00000", "alice's")
    response = post(bob.client, bucket, ndjson(numbered(3)))
    assert response.status_code == 404
    assert stored(bucket) == {"k00000": b"alice's"}
    # And alice's import into her bucket leaves bob's alone.
    bobs = bob.new_bucket()
    bob.set(bobs, "k00000", "bob's")
    assert post(alice.client, bucket, ndjson(numbered(3))).status_code == 200
    assert stored(bobs) == {"k00000": b"bob's"}


# Counting.


def remaining(response) -> int:
    return int(response["X-RateLimit-Remaining"])


def test_an_import_counts_one_request_per_100_lines(alice, bucket):
    before = remaining(alice.client.get(f"/v1/{bucket}/none"))
    assert remaining(post(alice.client, bucket, ndjson(numbered(100)))) == before - 1
    assert remaining(post(alice.client, bucket, ndjson(numbered(2345)))) == before - 1 - 24
    assert remaining(post(alice.client, bucket, b"\n")) == before - 1 - 24 - 1


def test_when_the_hours_requests_run_out_the_import_stops_where_they_did(alice, bucket, settings):
    settings.THISDB_REQUESTS_PER_HOUR = 10
    principals.forget_all()
    alice.client.get(f"/v1/{bucket}/none")  # 2 used (with the bucket's creation), 8 left
    response = post(alice.client, bucket, ndjson(numbered(1500)))
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    answer = response.json()
    assert answer["error"].startswith("line 801: rate limit reached")
    assert (answer["line"], answer["applied"], answer["imported"]) == (801, 800, 800)
    assert len(stored(bucket)) == 800
    assert remaining(response) == 0


# Watchers.


def test_a_watched_bucket_records_imported_keys_as_puts_batch_by_batch(alice, bucket):
    history.start_watching(bucket)
    lines = [{"key": f"k{n:05d}", "value": str(n)} for n in reversed(range(1500))]
    assert post(alice.client, bucket, ndjson(lines)).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT position, deleted, key, value, version FROM api_change WHERE bucket_id = %s "
            "ORDER BY position",
            [bucket],
        )
        changes = cursor.fetchall()
    assert len(changes) == 1500 and not any(deleted for _, deleted, *_ in changes)
    # Each batch in key order: the first holds the body's first 1,000 lines.
    recorded = [key for _, _, key, _, _ in changes]
    assert recorded == sorted(f"k{n:05d}" for n in range(500, 1500)) + sorted(
        f"k{n:05d}" for n in range(500)
    )
    versions = dict(Item.objects.filter(bucket_id=bucket).values_list("key", "version"))
    assert all(versions[key] == version for _, _, key, _, version in changes)
    positions = [p for p, *_ in changes]
    assert positions == list(range(positions[0], positions[0] + 1500))


def test_an_unwatched_bucket_records_nothing(alice, bucket):
    assert post(alice.client, bucket, ndjson(numbered(10))).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM api_change WHERE bucket_id = %s", [bucket])
        assert cursor.fetchone()[0] == 0
