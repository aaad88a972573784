"""A bucket out and in through the production web tier (`make serve`, granian and its front), as
a user's own client would do it: an export piped into an import, a client that leaves in the
middle of an import, one very large import, and watchers while imports run.

(The export's and the import's rules, line by line: tests/api/test_export.py and
tests/api/test_import.py; the front's streaming and memory with a body-only application:
tests/test_bulk_serving.py; watchers of an import and writes beside it: test_import_served.py.)
"""

import http.client
import json
import socket
import threading
import time

import pytest
from django.db import connection

from api.models import Item
from tests.conftest import Persona
from tests.serving import request, rss_kib, worker_pids
from tests.test_bulk_serving import EXPORT, MIB, platform

pytestmark = pytest.mark.django_db(transaction=True)

NDJSON = {"Content-Type": "application/x-ndjson"}
PATIENCE = 60  # seconds any answer may take on a loaded machine (no timing asserted with it)
ROOM = {"THISDB_MAX_KEYS_PER_BUCKET": "2000000"}  # the free plan's 100,000 is too few


def seed(bucket: str, count: int) -> None:
    """`count` live keys of every kind, in one statement: keys with a newline, a tab, non-ASCII
    letters and an emoji; values that are text, binary (not UTF-8: exported in base64) and
    empty; a ttl of two hours, one of minutes, or none; and a few expired keys, never exported."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO api_item (bucket_id, key, value, expires_at, updated_at) "
            "SELECT %(b)s, "
            "  CASE i %% 4 WHEN 0 THEN 'k' || lpad(i::text, 6, '0') "
            "    WHEN 1 THEN 'line' || chr(10) || lpad(i::text, 6, '0') "
            "    WHEN 2 THEN 'é-' || lpad(i::text, 6, '0') || '-ключ' "
            "    ELSE 'tab' || chr(9) || lpad(i::text, 6, '0') || ' 😀' END, "
            "  CASE i %% 3 WHEN 0 THEN convert_to('text ' || i || ' ü' || chr(10), 'UTF8') "
            "    WHEN 1 THEN '\\x00ff'::bytea || int4send(i) "
            "    ELSE ''::bytea END, "
            "  CASE WHEN i %% 5 = 0 THEN now() + interval '2 hours' "
            "    WHEN i %% 7 = 0 THEN now() + make_interval(secs => 300 + i %% 600) END, "
            "  now() "
            "FROM generate_series(0, %(n)s - 1) AS i "
            "UNION ALL SELECT %(b)s, 'gone' || i, 'x', now() - interval '1 day', now() "
            "FROM generate_series(1, 7) AS i",
            {"b": bucket, "n": count},
        )
        cursor.execute("ANALYZE api_item")


def exported(port: int, key: str, bucket: str) -> dict[str, dict]:
    """The bucket's export through the server: key -> its line, parsed."""
    status, headers, body = request(
        port, "GET", f"/v1/{bucket}{EXPORT}", headers={"X-Api-Key": key}, timeout=PATIENCE
    )
    assert status == 200, body[:500]
    lines = [json.loads(line) for line in body.splitlines()]
    assert len(lines) == int(headers["x-thisdb-export-keys"])
    keys = [line["key"] for line in lines]
    assert keys == sorted(keys, key=str.encode)  # in key order, as the bytes compare
    return {line["key"]: line for line in lines}


def ndjson(keys, value: str = "v") -> bytes:
    return b"".join(json.dumps({"key": k, "value": f"{value}{k}"}).encode() + b"\n" for k in keys)


def test_a_bucket_exported_and_piped_into_an_import_is_equal_in_another_bucket(tmp_path):
    """200,000 keys of every kind: the export's answer is read in pieces and sent on as they
    come as the chunked body of an import into another bucket (two bulk threads of one worker
    at once), and the two buckets then export the same keys, values, encodings and ttls (a
    ttl of 0, never, stays never, though the target's default is a minute), at new versions."""
    alice = Persona("alice")
    source, target = alice.new_bucket(), alice.new_bucket(default_ttl=60)
    count = 200_000
    seed(source, count)
    key = {"X-Api-Key": alice.key}
    with platform(tmp_path, THISDB_BULK_THREADS="2", **ROOM) as port:
        started = time.monotonic()
        out = http.client.HTTPConnection("127.0.0.1", port, timeout=PATIENCE)
        out.request("GET", f"/v1/{source}{EXPORT}", headers=key)
        export = out.getresponse()
        assert export.status == 200 and export.headers["X-Thisdb-Export-Keys"] == str(count)
        pieces = 0

        def piped():
            nonlocal pieces
            while piece := export.read1(256 * 1024):
                pieces += 1
                yield piece

        into = http.client.HTTPConnection("127.0.0.1", port, timeout=PATIENCE)
        into.request(
            "POST", f"/v1/{target}?format=json", piped(), {**NDJSON, **key}, encode_chunked=True
        )
        answer = into.getresponse()
        assert (answer.status, json.loads(answer.read())) == (200, {"imported": count})
        took = time.monotonic() - started
        out.close()
        into.close()
        original, copy = exported(port, alice.key, source), exported(port, alice.key, target)
    assert pieces > 10  # streamed both ways, not one piece
    assert list(copy) == list(original) and len(copy) == count
    kinds = {"binary": 0, "newline": 0, "non-ASCII": 0, "ttl": 0, "never": 0}
    for name, line in original.items():
        twin = copy[name]
        assert (twin["value"], twin.get("encoding")) == (line["value"], line.get("encoding"))
        assert (twin["ttl"] == 0) == (line["ttl"] == 0), name
        assert int(twin["version"]) > int(line["version"])  # every key written anew
        kinds["binary"] += line.get("encoding") == "base64"
        kinds["newline"] += "\n" in name
        kinds["non-ASCII"] += not name.isascii()
        kinds["ttl"] += line["ttl"] > 0
        kinds["never"] += line["ttl"] == 0
    # The copy of a key got the seconds the original had left when it was exported, rounded
    # up: it expires with the original, or later by at most the time the copy took.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), "
            "  count(*) FILTER (WHERE (s.expires_at IS NULL) <> (t.expires_at IS NULL)), "
            "  min(extract(epoch FROM t.expires_at - s.expires_at)), "
            "  max(extract(epoch FROM t.expires_at - s.expires_at)) "
            "FROM api_item s JOIN api_item t ON t.key = s.key "
            "WHERE s.bucket_id = %s AND t.bucket_id = %s",
            [source, target],
        )
        (both, never_or_not, earliest, latest) = cursor.fetchone()
    assert (both, never_or_not) == (count, 0)
    assert 0 <= earliest <= latest <= took + 1, (earliest, latest)
    assert all(n > 10_000 for n in kinds.values()), kinds
    print(f"copied {count} keys through the server in {took:.1f} s: {count / took:,.0f} keys/s")


def test_a_client_that_leaves_mid_import_leaves_what_the_next_export_shows(tmp_path):
    """A raw client sends a chunked NDJSON body in pieces, the last chunk cut inside a line,
    then closes its socket. The import applies every line that came whole, 1 to N, and that is
    exactly what the next export shows; the worker's one bulk thread is free again (the export
    is not refused as busy, and a next import goes through) and the server answers as before."""
    alice = Persona("alice")
    bucket = alice.new_bucket(default_ttl=0)
    keys = [f"k{n:05d}" for n in range(6000)]  # about 230 KB: several batches of 1,000 lines
    cut = ndjson(keys) + b'{"key": "k06000", "val'
    pieces = [cut[i : i + 16_384] for i in range(0, len(cut), 16_384)]
    last = pieces.pop()[:8000]  # the last chunk says its size, and only part of it comes
    sent = b"".join(pieces) + last
    head = (
        f"POST /v1/{bucket} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: {alice.key}\r\n"
        "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    key = {"X-Api-Key": alice.key}
    with platform(tmp_path, THISDB_BULK_THREADS="1") as port:
        with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as client:
            client.sendall(head)
            for piece in pieces:
                client.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            client.sendall(b"%x\r\n%s" % (len(last) * 2, last))
            # Until the import has begun (its first batch is in): then the client leaves.
            deadline = time.monotonic() + PATIENCE
            while not Item.objects.filter(bucket_id=bucket).exists():
                assert time.monotonic() < deadline, "the import did not begin"
                time.sleep(0.05)
        # The import's thread ends with what it applied; until then an export is refused
        # (503: the worker's one bulk thread is taken), after it the export shows it all.
        deadline = time.monotonic() + PATIENCE
        while True:
            status, _, listed = request(port, "GET", f"/v1/{bucket}{EXPORT}", headers=key)
            if status != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status == 200, listed
        shown = [json.loads(line) for line in listed.splitlines()]
        whole = sent.count(b"\n")  # the lines that came whole (about 5,600)
        assert [line["key"] for line in shown] == keys[:whole]
        assert all(line["value"] == f"v{line['key']}" for line in shown)
        stored = Item.objects.filter(bucket_id=bucket).order_by("key")
        assert list(stored.values_list("key", flat=True)) == keys[:whole]
        # The server goes on: a single read, and an import in the bulk thread the other left.
        status, _, value = request(port, "GET", f"/v1/{bucket}/k00000", headers=key)
        assert (status, value) == (200, b"vk00000")
        status, _, answer = request(
            port, "POST", f"/v1/{bucket}?format=json", ndjson(["after"]), {**NDJSON, **key}
        )
        assert (status, json.loads(answer)) == (200, {"imported": 1})
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def numbered_lines(count: int, block: int = 10_000):
    """`count` short NDJSON lines (about 43 bytes each), `block` lines a piece, made as sent."""
    for start in range(0, count, block):
        yield b"".join(
            b'{"key": "key-%07d", "value": "0123456789"}\n' % n
            for n in range(start, min(start + block, count))
        )


class PeakMemory:
    """The largest resident memory of a process, sampled every 0.1 s until stopped."""

    def __init__(self, pid: int):
        self.pid, self.peak, self.samples = pid, rss_kib(pid), 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.sample)
        self.thread.start()

    def sample(self) -> None:
        while not self.done.wait(0.1):
            self.peak = max(self.peak, rss_kib(self.pid))
            self.samples += 1

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return self.peak


def test_half_a_million_lines_in_one_request_through_the_front_in_flat_memory(tmp_path):
    """500,000 lines (21 MB) in one chunked request through the front, which caps no streamed
    body (it reads others whole, up to 10 MiB): all imported, and the worker's memory stays
    what it was after a first import of 10,000 lines (the batch, the chunk read ahead and the
    line being read are all it holds)."""
    alice = Persona("alice")
    warm, bucket = alice.new_bucket(default_ttl=0), alice.new_bucket(default_ttl=0)
    count = 500_000  # 21 MB, twice the largest body the front reads whole (a minute at most)
    key = {"X-Api-Key": alice.key}
    with platform(tmp_path, **ROOM) as port:
        (worker,) = worker_pids(port)
        status, _, answer = request(
            port,
            "POST",
            f"/v1/{warm}?format=json",
            b"".join(numbered_lines(10_000)),
            {**NDJSON, **key},
            timeout=PATIENCE,
        )
        assert (status, json.loads(answer)) == (200, {"imported": 10_000})
        before = rss_kib(worker)
        memory = PeakMemory(worker)
        started = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PATIENCE)
            conn.request(
                "POST",
                f"/v1/{bucket}?format=json",
                numbered_lines(count),
                {**NDJSON, **key},
                encode_chunked=True,
            )
            response = conn.getresponse()
            answer = response.read()
            conn.close()
        finally:
            peak = memory.stop()
        took = time.monotonic() - started
    assert (response.status, json.loads(answer)) == (200, {"imported": count})
    assert Item.objects.filter(bucket_id=bucket).count() == count
    assert memory.samples > 10
    assert peak - before < 16 * MIB, (before, peak)
    print(
        f"imported {count:,} keys in {took:.1f} s ({count / took:,.0f} keys/s); worker "
        f"{before / 1024:.0f} MiB before, {peak / 1024:.0f} MiB at most"
    )


class Watch:
    """A watch stream read in a thread of its own as fast as it comes: its events as (position,
    type, key, when it arrived)."""

    def __init__(self, port: int, bucket: str, key: str):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PATIENCE)
        self.conn.request("GET", f"/v1/{bucket}?watch=true", headers={"X-Api-Key": key})
        self.response = self.conn.getresponse()
        assert self.response.status == 200
        self.events: list[tuple[int, str, str, float]] = []
        self.opened = threading.Event()  # its first block (the opening id) came
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()
        assert self.opened.wait(PATIENCE)

    def read(self) -> None:
        rest = b""
        try:
            while chunk := self.response.read1(256 * 1024):
                now = time.monotonic()
                *blocks, rest = (rest + chunk).split(b"\n\n")
                for block in blocks:
                    self.opened.set()
                    fields = dict(line.split(": ", 1) for line in block.decode().split("\n"))
                    if "event" in fields:
                        data = json.loads(fields["data"])
                        self.events.append((int(fields["id"]), fields["event"], data["key"], now))
        except (OSError, http.client.HTTPException):
            pass  # closed by the test, in the middle of a chunk

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + PATIENCE
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self.conn.sock.shutdown(socket.SHUT_RDWR)  # the reading thread's read ends
        self.thread.join(PATIENCE)
        self.conn.close()


def test_watchers_during_a_large_import_get_every_key_and_others_their_own_at_once(tmp_path):
    """One worker: alice imports 100,000 keys in one chunked request into a bucket she watches,
    while bob writes to a bucket of his, one key at a time, and watches it. Alice's watcher
    gets every imported key as a put, in the lines' order, at consecutive positions; bob's gets
    each of his writes while the import still runs: the import does not hold the hub (which
    sends both streams on the worker's one event loop) until it ends."""
    alice, bob = Persona("alice"), Persona("bob")
    imported, own = alice.new_bucket(default_ttl=0), bob.new_bucket(default_ttl=0)
    count = 100_000
    keys = [f"key-{n:07d}" for n in range(count)]  # numbered_lines' keys, in order
    with platform(tmp_path, WEB_THREADS="2", **ROOM) as port:
        watching, other = Watch(port, imported, alice.key), Watch(port, own, bob.key)
        outcome: dict = {}

        def run_import():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PATIENCE)
            conn.request(
                "POST",
                f"/v1/{imported}?format=json",
                numbered_lines(count, block=1000),
                {**NDJSON, "X-Api-Key": alice.key},
                encode_chunked=True,
            )
            response = conn.getresponse()
            outcome["answer"] = (response.status, json.loads(response.read()))
            outcome["ended"] = time.monotonic()
            conn.close()

        importer = threading.Thread(target=run_import)
        importer.start()
        writes: list[tuple[str, float]] = []  # bob's keys and when each write was answered
        while importer.is_alive() and len(writes) < 1000:
            name = f"b{len(writes):04d}"
            status, _, _ = request(port, "POST", f"/v1/{own}/{name}", b"v", {"X-Api-Key": bob.key})
            assert status == 200
            writes.append((name, time.monotonic()))
            time.sleep(0.1)
        importer.join(PATIENCE)
        assert outcome["answer"] == (200, {"imported": count})
        watching.wait_for(count)
        other.wait_for(len(writes))
        watching.close()
        other.close()
    assert [(kind, key) for _, kind, key, _ in watching.events] == [("put", k) for k in keys]
    first = watching.events[0][0]
    assert [position for position, *_ in watching.events] == list(range(first, first + count))
    assert [(kind, key) for _, kind, key, _ in other.events] == [("put", k) for k, _ in writes]
    # Each of bob's writes while the import ran reached his watcher within the most a change
    # may be late by the hub's design (THISDB_WATCH_POLL_SECONDS, 2 s, when a notice is lost),
    # and a second for a loaded machine: a hub held by the import would send them once it
    # ended, as late as it took.
    late = [
        arrived - written
        for (_, _, _, arrived), (_, written) in zip(other.events, writes, strict=True)
        if written < outcome["ended"]
    ]
    assert len(late) >= 10, late
    assert max(late) < 3, sorted(late)[-5:]
    print(f"{len(late)} of bob's writes during the import: events at most {max(late):.2f} s late")
