"""POST/PATCH /v1/<bucket>/<key> with a chunked body (no Content-Length), through Django's real
ASGI handler: the 1 MiB value limit (413) holds for a body that declares no length."""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from django.db import connection

from api.models import Item
from thisdb_site.asgi import application

MIB = 1024 * 1024
CHUNK = 64 * 1024

pytestmark = pytest.mark.django_db(transaction=True)  # the ASGI handler's work must be committed


@pytest.fixture(autouse=True)
def _close_connection():
    yield
    connection.close()


def chunks_of(body: bytes, size: int = CHUNK) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)] or [b""]


def asgi_request(method: str, path: str, api_key: str, chunks: list[bytes], query: bytes = b""):
    """Send one request to the ASGI application, the body as `chunks` and no Content-Length;
    return (status, headers, body) from the messages it sends back."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"x-api-key", api_key.encode()),
            (b"content-type", b"application/octet-stream"),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    assert all(name != b"content-length" for name, _value in scope["headers"])
    sent: list[dict] = []

    async def run() -> None:
        messages = [
            {"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1}
            for n, chunk in enumerate(chunks)
        ]
        connected = asyncio.Event()  # never set: the client stays connected until the answer

        async def receive() -> dict:
            if messages:
                return messages.pop(0)
            await connected.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        await application(scope, receive, send)

    # From the main thread, async_to_sync runs the handler's sync parts (the view and its SQL)
    # back in this thread, on the test's own connection.
    async_to_sync(run)()

    start = [m for m in sent if m["type"] == "http.response.start"]
    assert len(start) == 1, sent
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers = {name.decode().lower(): value.decode() for name, value in start[0]["headers"]}
    return start[0]["status"], headers, body


def test_a_chunked_body_over_1_mib_is_413_and_nothing_is_written(alice):
    bucket = alice.new_bucket()
    body = b"v" * (MIB + 1)
    chunks = chunks_of(body)
    assert len(chunks) == 17  # 16 full chunks and the one byte past the limit

    status, headers, content = asgi_request("POST", f"/v1/{bucket}/big", alice.key, chunks)
    assert status == 413
    assert content == b"the value is larger than the limit of 1048576 bytes"
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert not Item.objects.filter(bucket_id=bucket).exists()


def test_a_chunked_body_far_over_the_limit_is_413(alice):
    bucket = alice.new_bucket()
    chunks = chunks_of(b"v" * (3 * MIB))
    status, _headers, _content = asgi_request("PUT", f"/v1/{bucket}/big", alice.key, chunks)
    assert status == 413
    assert not Item.objects.filter(bucket_id=bucket).exists()


def test_a_chunked_body_over_the_limit_does_not_replace_a_value(alice):
    bucket = alice.new_bucket()
    alice.set(bucket, "big", "before")
    chunks = chunks_of(b"v" * (MIB + 1))
    status, _headers, _content = asgi_request("POST", f"/v1/{bucket}/big", alice.key, chunks)
    assert status == 413
    assert bytes(Item.objects.get(bucket_id=bucket, key="big").value) == b"before"


def test_a_chunked_body_of_exactly_1_mib_is_stored_intact(alice):
    bucket = alice.new_bucket()
    body = bytes(range(256)) * (MIB // 256)
    assert len(body) == MIB

    status, _headers, content = asgi_request(
        "POST", f"/v1/{bucket}/big", alice.key, chunks_of(body)
    )
    assert status == 200
    assert content == b"OK"
    assert bytes(Item.objects.get(bucket_id=bucket, key="big").value) == body


def test_a_chunked_body_in_uneven_chunks_is_stored_intact(alice):
    bucket = alice.new_bucket()
    body = b"0123456789" * 1000
    chunks = [body[:1], body[1:4097], body[4097:9999], body[9999:], b""]

    status, _headers, _content = asgi_request("POST", f"/v1/{bucket}/k", alice.key, chunks)
    assert status == 200
    assert bytes(Item.objects.get(bucket_id=bucket, key="k").value) == body


def test_a_chunked_increment_body(alice):
    bucket = alice.new_bucket()
    status, _headers, content = asgi_request(
        "PATCH", f"/v1/{bucket}/n", alice.key, [b"+", b"4", b"2"]
    )
    assert status == 200
    assert content == b"42"
    assert bytes(Item.objects.get(bucket_id=bucket, key="n").value) == b"42"


def test_a_chunked_increment_body_over_the_limit_is_413(alice):
    bucket = alice.new_bucket()
    chunks = chunks_of(b"+" + b"0" * MIB)
    status, _headers, _content = asgi_request("PATCH", f"/v1/{bucket}/n", alice.key, chunks)
    assert status == 413
    assert not Item.objects.filter(bucket_id=bucket).exists()
