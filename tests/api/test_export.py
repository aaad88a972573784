"""GET /v1/<bucket>?format=ndjson&values=true&all=true: every live key in one NDJSON answer,
the listing's lines, in key order, from one snapshot, counted one request per 1,000 keys.
(Through the production server, and memory: tests/test_bulk_serving.py.)"""

import json
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from api import exports, principals
from api.models import Item
from tests.conftest import Persona, token_client

EXPORT = "?format=ndjson&values=true&all=true"


def varied_keys(bucket: str, count: int) -> None:
    """`count` live keys of every kind (newlines, non-ASCII, binary and empty values, TTLs) and
    a few expired ones, straight into the table."""
    now = timezone.now()
    items = []
    for n in range(count):
        key = [f"k{n:06d}", f"line\n{n:06d}", f"é-{n:06d}-ключ", f"tab\t{n:06d} "][n % 4]
        value = [b"text %d" % n, bytes([n % 256, 0xFF, 0]), b"", "ü\n".encode()][n % 3]
        expires = now + timedelta(hours=2) if n % 5 == 0 else None
        items.append(Item(bucket_id=bucket, key=key, value=value, expires_at=expires))
    for n in range(7):  # expired: never exported, as never listed
        items.append(
            Item(bucket_id=bucket, key=f"gone{n}", value=b"x", expires_at=now - timedelta(1))
        )
    Item.objects.bulk_create(items, batch_size=5000)


def export(client: Client, bucket: str, query: str = EXPORT):
    response = client.get(f"/v1/{bucket}{query}")
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body


def listed_pages(client: Client, bucket: str, query: str = "") -> bytes:
    """The NDJSON listing with values, page after page."""
    body, cursor = b"", None
    while True:
        more = f"&cursor={cursor}" if cursor else ""
        response = client.get(f"/v1/{bucket}?format=ndjson&values=true{query}{more}")
        assert response.status_code == 200, response.content
        body += response.content
        cursor = response.get("X-Next-Cursor")
        if cursor is None:
            return body


def without_ttl(lines: bytes) -> list[dict]:
    # A key's ttl is whole seconds left when it was read: it may tick between two reads.
    items = [json.loads(line) for line in lines.splitlines()]
    for item in items:
        ttl = item.pop("ttl")
        assert ttl == 0 or 7200 - 60 <= ttl <= 7200, item
    return items


def test_an_export_is_the_listings_lines_in_key_order(alice, bucket, settings):
    settings.THISDB_REQUESTS_PER_HOUR = 1_000
    principals.forget_all()
    varied_keys(bucket, 20_000)
    response, body = export(alice.client, bucket)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["X-Thisdb-Export"] == "all"
    assert response["X-Thisdb-Export-Keys"] == "20000"
    assert "X-Next-Cursor" not in response
    lines = body.split(b"\n")
    assert len(lines) == 20_001 and lines[-1] == b""  # one line a key, each ended
    assert without_ttl(body) == without_ttl(listed_pages(alice.client, bucket))
    keys = [json.loads(line)["key"] for line in lines[:-1]]
    assert keys == sorted(keys, key=lambda k: k.encode())
    first = json.loads(lines[0])
    assert list(first) == ["key", "value", "ttl", "version"]  # the listing's shape
    binary = next(json.loads(line) for line in lines if b'"encoding"' in line)
    assert list(binary) == ["key", "value", "encoding", "ttl", "version"]


def test_an_export_of_an_empty_bucket_or_prefix_is_empty(alice, bucket):
    response, body = export(alice.client, bucket)
    assert response.status_code == 200 and body == b""
    assert response["X-Thisdb-Export-Keys"] == "0"


def test_prefix_and_cursor_narrow_the_export(alice, bucket):
    for key in ["a/1", "a/2", "a/3", "b/1", "a"]:
        assert alice.set(bucket, key, "v").status_code == 200
    _, body = export(alice.client, bucket, EXPORT + "&prefix=a/")
    assert [json.loads(line)["key"] for line in body.splitlines()] == ["a/1", "a/2", "a/3"]
    # cursor= resumes after a key (the unpadded base64url of "a/1", as the listing's)
    _, body = export(alice.client, bucket, EXPORT + "&prefix=a/&cursor=YS8x")
    assert [json.loads(line)["key"] for line in body.splitlines()] == ["a/2", "a/3"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?values=true&all=true", "add format=ndjson&values=true"),
        ("?format=json&values=true&all=true", "add format=ndjson&values=true"),
        ("?format=ndjson&all=true", "add format=ndjson&values=true"),
        (EXPORT + "&limit=10", "leave limit out"),
        ("?format=ndjson&values=true&all=maybe", "all must be true or false"),
    ],
)
def test_an_export_without_its_format_and_values_is_a_400(alice, bucket, query, message):
    response = alice.client.get(f"/v1/{bucket}{query}")
    assert response.status_code == 400
    assert message in response.content.decode()


def test_all_false_is_the_listing(alice, bucket):
    alice.set(bucket, "a", "v")
    response = alice.client.get(f"/v1/{bucket}?format=ndjson&values=true&all=false")
    assert not response.streaming and "X-Thisdb-Export" not in response
    assert json.loads(response.content)["key"] == "a"


def test_with_bulk_off_all_is_not_read_and_the_listing_pages_as_before(alice, bucket, settings):
    """THISDB_BULK=false: the server answers as one without exports, so a client pages."""
    settings.THISDB_BULK = False
    varied_keys(bucket, 1500)
    listing = alice.client.get(f"/v1/{bucket}?format=ndjson&values=true")
    response = alice.client.get(f"/v1/{bucket}{EXPORT}")
    assert response.status_code == 200 and not response.streaming
    assert "X-Thisdb-Export" not in response and "X-Thisdb-Export-Keys" not in response
    assert response["X-Next-Cursor"] == listing["X-Next-Cursor"]
    assert without_ttl(response.content) == without_ttl(listing.content)
    assert len(response.content.splitlines()) == 1000  # a page, not every key
    # What only an export refuses is the listing's now: a limit, another format, any all=.
    assert alice.client.get(f"/v1/{bucket}{EXPORT}&limit=2").status_code == 200
    assert alice.client.get(f"/v1/{bucket}?format=json&all=maybe").json()["next_cursor"]


def test_a_token_exports_only_inside_its_prefix(alice, bucket):
    for key in ["p/1", "p/2", "q/1"]:
        alice.set(bucket, key, "v")
    token = token_client(alice.token(bucket, "p/", "read"))
    _, body = export(token, bucket)
    assert [json.loads(line)["key"] for line in body.splitlines()] == ["p/1", "p/2"]
    assert export(token, bucket, EXPORT + "&prefix=q")[0].status_code == 403
    writer = token_client(alice.token(bucket, "p/", "write"))
    response, body = export(writer, bucket)
    assert response.status_code == 403 and b"no read permission" in body


def test_another_accounts_bucket_is_a_404(alice, bob, bucket):
    alice.set(bucket, "secret", "v")
    response, body = export(bob.client, bucket)
    assert response.status_code == 404 and b"secret" not in body


def test_an_export_counts_one_request_per_1000_keys_or_is_refused_whole(settings, db):
    settings.THISDB_REQUESTS_PER_HOUR = 6
    carol = Persona("carol")
    bucket = carol.new_bucket()  # request 1
    varied_keys(bucket, 2_001)
    response, _ = export(carol.client, bucket)  # 3 requests: 2..4
    assert response.status_code == 200
    assert response["X-RateLimit-Remaining"] == "2"
    response, body = export(carol.client, bucket)  # 3 more than the 2 left: refused whole
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert b"this export of 2001 keys (one request per 1,000) counts 3 requests" in body
    assert b"has 2 of its 6 left this hour; nothing was sent" in body
    # Nothing was counted: a one-request export still fits, twice.
    _, body = export(carol.client, bucket, EXPORT + "&prefix=k0000")
    assert body.count(b"\n") == 25  # k000000, k000004, ... k000096
    assert export(carol.client, bucket, EXPORT + "&prefix=k")[0].status_code == 200


def test_an_export_larger_than_an_hours_requests_says_to_export_by_prefix(settings, db):
    settings.THISDB_REQUESTS_PER_HOUR = 2
    carol = Persona("carol")
    bucket = carol.new_bucket()
    varied_keys(bucket, 3_000)
    response, body = export(carol.client, bucket)
    assert response.status_code == 429
    assert b"export a part at a time (prefix=)" in body


def test_the_cost_is_one_request_per_1000_keys_started():
    assert [exports.cost(n) for n in (0, 1, 1000, 1001, 20_000)] == [1, 1, 1, 2, 20]


def test_a_head_of_an_export_sends_no_lines(alice, bucket):
    alice.set(bucket, "a", "v")
    response = alice.client.head(f"/v1/{bucket}{EXPORT}")
    assert response.status_code == 200 and response["X-Thisdb-Export-Keys"] == "1"
    assert b"".join(response.streaming_content) == b""


@pytest.mark.django_db(transaction=True)
def test_writes_during_an_export_do_not_show_in_it(settings):
    """One snapshot: keys set, changed or deleted after the export began (by other connections)
    are exported as they were when it began."""
    settings.THISDB_REQUESTS_PER_HOUR = 1_000
    alice = Persona("alice")
    bucket = alice.new_bucket()
    varied_keys(bucket, 3 * exports.BATCH_KEYS)
    response = alice.client.get(f"/v1/{bucket}{EXPORT}")
    chunks = iter(response.streaming_content)
    first = next(chunks)  # the first batch is out; the others are read after the writes
    deleted, changed = "tab\t005999 ", "é-005998-ключ"  # both in the last batch

    def meanwhile():
        Item.objects.create(bucket_id=bucket, key="zzz-new", value=b"n")
        Item.objects.filter(bucket_id=bucket, key=deleted).delete()
        Item.objects.filter(bucket_id=bucket, key=changed).update(value=b"changed")
        connection.close()

    thread = threading.Thread(target=meanwhile)
    thread.start()
    thread.join()
    body = first + b"".join(chunks)
    response.close()
    items = {item["key"]: item for item in map(json.loads, body.splitlines())}
    assert len(items) == 3 * exports.BATCH_KEYS
    assert "zzz-new" not in items and deleted in items
    assert items[changed]["value"] != "changed"
    # ...and the export is over: the next one sees them.
    _, after = export(alice.client, bucket)
    assert b'"zzz-new"' in after and b'"changed"' in after
