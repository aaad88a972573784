"""POST /v1/<bucket> with many keys: an NDJSON body or Workers KV's JSON array (api.imports),
written in batches (api.writes.import_items)."""

import base64
import json

import pytest

from api import writes
from api.models import Item
from tests.conftest import token_client, unversioned

NDJSON = "application/x-ndjson"


def ndjson(lines) -> bytes:
    return b"".join(
        (line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines
    )


def post_import(client, bucket: str, body: bytes, content_type: str = NDJSON, query="?format=json"):
    return client.post(f"/v1/{bucket}{query}", body, content_type=content_type)


def listing(client, bucket: str) -> list[dict]:
    items, cursor = [], ""
    while True:
        page = client.get(f"/v1/{bucket}?format=json&values=true{cursor}").json()
        items += page["items"]
        if not page["next_cursor"]:
            return unversioned(items)
        cursor = f"&cursor={page['next_cursor']}"


def stored(bucket: str) -> dict[str, bytes]:
    return {key: bytes(value) for key, value in Item.objects.filter(bucket_id=bucket).values_list("key", "value")}


def test_an_ndjson_import_writes_every_line(alice, bucket):
    lines = [
        {"key": "text", "value": "héllo"},
        {"key": "bytes", "value": base64.b64encode(b"\x00\xff\x80").decode(), "encoding": "base64"},
        {"key": "line\nbreak", "value": "v", "ttl": 0},
        {"key": "ключ 🔑", "value": "", "ttl": 3600, "version": "17"},
    ]
    response = post_import(alice.client, bucket, ndjson(lines))
    assert response.status_code == 200, response.content
    assert response.json() == {"imported": 4}
    assert stored(bucket) == {"text": "héllo".encode(), "bytes": b"\x00\xff\x80", "line\nbreak": b"v", "ключ 🔑": b""}
