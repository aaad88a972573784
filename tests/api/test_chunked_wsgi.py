"""Chunked request bodies under WSGI servers: stored whole by gunicorn, or refused, never lost."""

import http.client
import json

import pytest
from django.db import connection

from api.models import Bucket, Item
from tests.conftest import Persona

pytestmark = pytest.mark.django_db(transaction=True)


def chunked_post(
    port: int, path: str, key: str, chunks: list[bytes], method: str = "POST"
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            method, path, body=iter(chunks), headers={"X-Api-Key": key}, encode_chunked=True
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_gunicorn_stores_a_chunked_body_whole(gunicorn_port):
    assert connection.vendor == "postgresql"
    carol = Persona("carol")
    bucket = carol.new_bucket()
    chunks = [bytes([i]) * 10_000 for i in range(50)]  # 500,000 bytes in 50 chunks

    status, body = chunked_post(gunicorn_port, f"/v1/{bucket}/big", carol.key, chunks)

    assert (status, body) == (200, b"OK")
    assert bytes(Item.objects.get(bucket_id=bucket, key="big").value) == b"".join(chunks)


def test_gunicorn_refuses_a_chunked_body_over_the_limit(gunicorn_port):
    carol = Persona("carol")
    bucket = carol.new_bucket()
    chunks = [b"x" * 65536] * 16 + [b"y"]  # 1 MiB + 1 byte, no Content-Length

    status, body = chunked_post(gunicorn_port, f"/v1/{bucket}/big", carol.key, chunks)

    assert status == 413
    assert b"larger than the limit" in body
    assert not Item.objects.filter(bucket_id=bucket).exists()


def test_a_server_that_cannot_read_chunks_refuses_with_411(live_server):
    # Django's development server (wsgiref) does not decode chunked bodies: the value would be
    # read as empty, so it must be refused rather than stored as "".
    carol = Persona("carol")
    bucket = carol.new_bucket()
    port = int(live_server.url.rsplit(":", 1)[1])

    status, body = chunked_post(port, f"/v1/{bucket}/k", carol.key, [b"hello", b"world"])

    assert status == 411
    assert b"Content-Length" in body
    assert not Item.objects.filter(bucket_id=bucket).exists()


def test_gunicorn_reads_chunked_form_bodies_too(gunicorn_port):
    carol = Persona("carol")
    status, bucket = chunked_post(gunicorn_port, "/v1/", carol.key, [b"default_", b"ttl=0"])
    assert status == 200
    assert Bucket.objects.get(pk=bucket.decode()).default_ttl == 0

    status, _ = chunked_post(
        gunicorn_port, f"/v1/{bucket.decode()}", carol.key, [b"default_ttl", b"=3600"], "PATCH"
    )
    assert status == 200
    assert Bucket.objects.get(pk=bucket.decode()).default_ttl == 3600

    form = f"bucket={bucket.decode()}&prefix=p&permissions=read&ttl=60".encode()
    status, token = chunked_post(gunicorn_port, "/v1/tokens", carol.key, [form[:10], form[10:]])
    assert status == 200
    assert len(token) == 40


def test_a_chunked_form_on_a_server_that_cannot_read_chunks_is_411(live_server):
    carol = Persona("carol")
    port = int(live_server.url.rsplit(":", 1)[1])
    status, body = chunked_post(port, "/v1/", carol.key, [b"default_ttl=0"])
    assert status == 411
    assert not Bucket.objects.filter(owner=carol.user).exists()


def test_gunicorn_reads_a_chunked_transaction_past_the_buffered_megabyte(gunicorn_port):
    # The first MiB is read before authentication; the rest follows from the same stream.
    carol = Persona("carol")
    bucket = carol.new_bucket()
    value = "v" * 900_000
    body = json.dumps(
        {
            "ops": [
                {"op": "set", "key": "a", "value": value},
                {"op": "set", "key": "b", "value": value},
            ]
        }
    ).encode()
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]

    status, answer = chunked_post(gunicorn_port, f"/v1/{bucket}", carol.key, chunks)

    assert status == 200, answer
    assert bytes(Item.objects.get(bucket_id=bucket, key="b").value) == value.encode()


def test_a_chunked_import_on_a_server_that_cannot_read_chunks_is_411(live_server):
    carol = Persona("carol")
    bucket = carol.new_bucket()
    port = int(live_server.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            "POST",
            f"/v1/{bucket}",
            body=iter([b'{"key": "k", "value": "v"}\n']),
            headers={"X-Api-Key": carol.key, "Content-Type": "application/x-ndjson"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        assert response.status == 411 and b"Content-Length" in response.read()
    finally:
        conn.close()
    assert not Item.objects.filter(bucket_id=bucket).exists()
