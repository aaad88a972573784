"""Bulk transfers through the production web tier (`make serve`, granian): an export streams
in pieces in flat memory and holds no normal thread; an import's body reaches the application
as it arrives, in flat memory, and a stall or a disconnect is an error in the reading thread.
(The front itself, message by message: tests/test_front_streams.py; the export's content:
tests/api/test_export.py.)"""

import http.client
import json
import socket
import time

import pytest
from django.conf import settings
from django.db import connection

from tests.api.test_export import varied_keys, without_ttl
from tests.conftest import RUN_PREFIX, Persona
from tests.serving import request, rss_kib, served, worker_pids

EXPORT = "?format=ndjson&values=true&all=true"
MIB = 1024


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def fill(bucket: str, count: int, value_bytes: int = 100) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO api_item (bucket_id, key, value, expires_at, updated_at) "
            "SELECT %s, 'key/' || lpad(i::text, 8, '0'), convert_to(repeat('v', %s), 'UTF8'), "
            "CASE WHEN i %% 3 = 0 THEN now() + interval '1 day' END, now() "
            "FROM generate_series(0, %s - 1) AS i",
            [bucket, value_bytes, count],
        )
        cursor.execute("ANALYZE api_item")


def platform(tmp_path, **env):
    return served(
        database_url(),
        tmp_path / "server.log",
        REDIS_URL=settings.REDIS_URL,
        THISDB_REDIS_PREFIX=RUN_PREFIX,
        THISDB_REQUESTS_PER_HOUR="100000",
        WEB_WORKERS="1",
        **env,
    )


def open_export(port: int, key: str, bucket: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = f"GET /v1/{bucket}{EXPORT} HTTP/1.1\r\nHost: x\r\nX-Api-Key: {key}\r\n\r\n"
    sock.sendall(head.encode())
    return sock


@pytest.mark.django_db(transaction=True)
def test_an_export_streams_in_pieces_in_flat_memory_beside_normal_requests(tmp_path):
    alice = Persona("alice")
    bucket = alice.new_bucket()
    fill(bucket, 300_000)  # about 37 MB of NDJSON
    alice.set(bucket, "a", "small")
    key = {"X-Api-Key": alice.key}
    with platform(tmp_path, WEB_THREADS="1", THISDB_BULK_THREADS="1") as port:
        (worker,) = worker_pids(port)
        assert request(port, "GET", f"/v1/{bucket}/a", headers=key)[0] == 200
        before = rss_kib(worker)
        # A client that reads the head and a little, then nothing: the export waits for it
        # (backpressure), holding the worker's one bulk thread.
        stalled = open_export(port, alice.key, bucket)
        first = stalled.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"\r\ntransfer-encoding: chunked\r\n" in first.lower()
        assert b"x-thisdb-export: all" in first.lower()
        time.sleep(1)
        # Normal requests are served meanwhile, in their own thread, at once...
        for _ in range(20):
            started = time.monotonic()
            assert request(port, "GET", f"/v1/{bucket}/a", headers=key)[0] == 200
            assert time.monotonic() - started < 1
        # ...and a second export finds no bulk thread free: 503, try again later.
        status, headers, body = request(port, "GET", f"/v1/{bucket}{EXPORT}", headers=key)
        assert status == 503 and headers["retry-after"] == "5"
        assert b"busy with other bulk transfers" in body
        # The stalled export holds what the socket buffers take, not the answer.
        assert rss_kib(worker) - before < 16 * MIB
        stalled.close()  # it leaves: the export stops and its thread is free again
        deadline = time.monotonic() + 10
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", f"/v1/{bucket}{EXPORT}", headers=key)
            response = conn.getresponse()
            if response.status != 503 or time.monotonic() > deadline:
                break
            conn.close()
            time.sleep(0.2)
        assert response.status == 200
        # Read in pieces; memory stays flat all along.
        lines = pieces = 0
        peak = before
        started = time.monotonic()
        while piece := response.read1(256 * 1024):
            pieces += 1
            lines += piece.count(b"\n")
            if pieces % 20 == 0:
                peak = max(peak, rss_kib(worker))
        elapsed = time.monotonic() - started
        conn.close()
    assert lines == 300_001
    assert pieces > 100
    assert peak - before < 16 * MIB, (before, peak)
    print(f"exported {lines} keys in {elapsed:.2f} s: {lines / elapsed:,.0f} keys/s")


@pytest.mark.django_db(transaction=True)
def test_an_export_through_the_server_is_the_listings_pages(tmp_path):
    alice = Persona("alice")
    bucket = alice.new_bucket()
    varied_keys(bucket, 20_000)  # binary values, TTLs, newlines, non-ASCII
    key = {"X-Api-Key": alice.key}
    with platform(tmp_path) as port:
        status, headers, exported = request(port, "GET", f"/v1/{bucket}{EXPORT}", headers=key)
        assert status == 200 and headers["x-thisdb-export-keys"] == "20000"
        listed, cursor = b"", ""
        while cursor is not None:
            query = (
                f"?format=ndjson&values=true&cursor={cursor}"
                if cursor
                else "?format=ndjson&values=true"
            )
            status, headers, page = request(port, "GET", f"/v1/{bucket}{query}", headers=key)
            assert status == 200
            listed += page
            cursor = headers.get("x-next-cursor")
    assert exported.count(b"\n") == 20_000
    assert without_ttl(exported) == without_ttl(listed)


@pytest.mark.django_db(transaction=True)
def test_an_export_that_is_left_gives_its_connection_back(tmp_path):
    alice = Persona("alice")
    bucket = alice.new_bucket()
    fill(bucket, 100_000)
    with platform(tmp_path, THISDB_BULK_THREADS="1") as port:
        sock = open_export(port, alice.key, bucket)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert exporting(), "the export's snapshot is open while it is sent"
        sock.close()
        deadline = time.monotonic() + 10
        while exporting() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not exporting(), "the export's transaction outlived its client"
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def exporting() -> bool:
    """Whether another connection holds a transaction open (the export's snapshot)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
        )
        return cursor.fetchone()[0] > 0


def body_app(tmp_path, **env):
    return served(
        database_url(),
        tmp_path / "server.log",
        SERVE_APP="tests.bulk_app:application",
        THISDB_TEST_BODY_LOG=str(tmp_path / "body.log"),
        WEB_WORKERS="1",
        **env,
    )


def ndjson_lines(count: int):
    line = json.dumps({"key": "k" * 20, "value": "v" * 60}).encode() + b"\n"
    batch = line * 1000
    for _ in range(count // 1000):
        yield batch


@pytest.mark.django_db(transaction=True)
def test_a_streamed_body_of_many_mb_reaches_the_application_in_flat_memory(tmp_path):
    with body_app(tmp_path) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request(
            "POST",
            "/v1/bucket",
            body=ndjson_lines(1_000_000),  # about 96 MB
            headers={"Content-Type": "application/x-ndjson"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        answer = json.loads(response.read())
        conn.close()
    assert response.status == 200
    assert answer["lines"] == 1_000_000 and answer["bytes"] > 90 * 1024 * 1024
    assert answer["streamed"] is True
    assert answer["rss_peak_kib"] - answer["rss_before_kib"] < 8 * MIB, answer


@pytest.mark.django_db(transaction=True)
def test_a_stalled_or_broken_off_body_is_an_error_in_the_reading_thread(tmp_path):
    log = tmp_path / "body.log"
    with body_app(tmp_path, THISDB_BODY_TIMEOUT="1") as port:
        head = (
            b"POST /v1/bucket HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
            b"Content-Length: 1000000\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head + b'{"key": "a"}\n' * 10)  # then nothing
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 400")
        assert b"nothing arrived for 1 s (THISDB_BODY_TIMEOUT)" in answer
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head + b'{"key": "a"}\n' * 20)
            time.sleep(0.3)
        deadline = time.monotonic() + 5
        while log.read_text().count("\n") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    first, second = log.read_text().splitlines()
    assert first.startswith("BodyTimeout after 10 lines: the request body stalled")
    assert second.startswith("BodyBroken after 20 lines: the request body ended early")
