"""Watching a bucket (GET /v1/<bucket>?watch=true) through the production web tier (`make serve`,
two workers): what a stream and a long-poll send, to whom, and how they end.

The server reads its history only when told (THISDB_WATCH_POLL_SECONDS is an hour here), so every
change below reaches its watchers by a notice (api.notify), from this or the other worker; the
last test starts a server whose notices never arrive and shows the history's poll alone
delivers every change."""

import http.client
import json
import os
import re
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from api import history, lifecycle, statements, watchhub
from tests.conftest import RUN_PREFIX, Persona
from tests.serving import request, served
from tests.sse import Stream, change
from tests.wire import Proxy

pytestmark = pytest.mark.django_db(transaction=True)

MAX_WATCHES = 3
# Long enough for any event to arrive on a loaded machine; no test measures how long it took.
PATIENCE = 20


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def server_settings(**more: str) -> dict:
    return {
        "THISDB_REDIS_PREFIX": RUN_PREFIX,  # the block markers and notices of this run
        "THISDB_KEY_WRITES_PER_SECOND": "0",
        "THISDB_REQUESTS_PER_HOUR": "1000000",
        "THISDB_MAX_WATCHES": str(MAX_WATCHES),
        "THISDB_WATCH_KEEPALIVE_SECONDS": "1",
        "WEB_WORKERS": "2",
        "WEB_THREADS": "2",
        **more,
    }


class Subscriptions:
    """A parser for wire.Proxy that notes whether its connection subscribed."""

    def __init__(self):
        self.subscribed = False

    def feed(self, data: bytes) -> int:
        if b"SUBSCRIBE" in data.upper():
            self.subscribed = True
        return 0


@pytest.fixture(scope="module")
def redis_proxy():
    """The module's server reaches Redis through this proxy, which knows its connections."""
    redis_url = urlsplit(settings.REDIS_URL)
    proxy = Proxy((redis_url.hostname, redis_url.port or 6379), Subscriptions)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def port(django_db_setup, django_db_blocker, tmp_path_factory, redis_proxy):
    """One server for the module, on the test database (each test's rows are committed)."""
    with django_db_blocker.unblock():
        url = database_url()
    log = tmp_path_factory.mktemp("watch") / "server.log"
    redis_path = urlsplit(settings.REDIS_URL).path or "/0"
    through = f"redis://127.0.0.1:{redis_proxy.port}{redis_path}"
    with served(
        url, log, **server_settings(REDIS_URL=through, THISDB_WATCH_POLL_SECONDS="3600")
    ) as port:
        yield port


@pytest.fixture
def alice():
    return Persona("alice")


@pytest.fixture
def bucket(alice):
    """A bucket watched from its start (api.history.start_watching): every change is recorded,
    those made before a test's stream opens too."""
    made = alice.new_bucket(default_ttl=0)
    history.start_watching(made)
    return made


def call(port, persona, method: str, path: str, body: bytes | str | None = None, **headers):
    if isinstance(body, str):
        body = body.encode()
    status, answer_headers, content = request(
        port, method, path, body, {"X-Api-Key": persona.key, **headers}, timeout=PATIENCE
    )
    return status, {name.lower(): value for name, value in answer_headers.items()}, content


def put(port, persona, bucket: str, key: str, value: str, query: str = "") -> int:
    """Set a key through the server; returns its version."""
    status, headers, content = call(port, persona, "POST", f"/v1/{bucket}/{key}{query}", value)
    assert status == 200, content
    return int(headers["etag"].strip('"'))


def watch(port, persona, bucket: str, query: str = "", **options) -> Stream:
    stream = Stream(port, bucket, query, key=persona.key, timeout=PATIENCE, **options)
    assert stream.status == 200, stream.body
    opening = stream.next_block()
    assert opening is not None and opening.comments == ["watching"] and opening.retry == "1000"
    stream.start = opening.position
    return stream


def rows(bucket: str) -> list[tuple]:
    """The bucket's history as watchers are sent it: (id, type, key, version)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT position, deleted, key, version FROM api_change WHERE bucket_id = %s "
            "ORDER BY position",
            [bucket],
        )
        return [(p, "delete" if d else "put", k, v) for p, d, k, v in cursor.fetchall()]


def ends(stream: Stream) -> bool:
    return stream.next_block() is None


# What a stream sends.


def test_a_stream_opens_at_the_head_and_sends_each_change_under_its_prefix(port, alice, bucket):
    put(port, alice, bucket, "a:old", "before")
    with watch(port, alice, bucket, "&prefix=a:") as stream:
        assert stream.start == 1
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert "x-thisdb-watch" not in stream.headers  # the front's plan never leaves
        v1 = put(port, alice, bucket, "a:1", "one")
        put(port, alice, bucket, "b:1", "outside")
        call(port, alice, "PATCH", f"/v1/{bucket}/a:n", "+4")
        call(port, alice, "DELETE", f"/v1/{bucket}/b:1")
        call(port, alice, "DELETE", f"/v1/{bucket}/a:1")
        put(port, alice, bucket, "a:bin", "")
        events = stream.events(4)

    assert [(e.position, e.event, e.data["key"]) for e in events] == [
        (2, "put", "a:1"),
        (4, "put", "a:n"),
        (6, "delete", "a:1"),
        (7, "put", "a:bin"),
    ]
    assert events[0].data == {"key": "a:1", "value": "one", "version": str(v1), "ttl": 0}
    assert events[1].data["value"] == "4"
    assert events[2].data["reason"] == "deleted"
    assert [change(e) for e in events] == [r for r in rows(bucket)[1:] if r[2].startswith("a:")]


def test_streams_of_other_prefixes_each_get_their_own_share_of_one_transaction(port, alice, bucket):
    """A transaction's changes reach the watchers as one batch, whose wire form is made once a
    prefix and shared by that prefix's streams: each stream gets exactly its prefix's events.
    (The plan allows MAX_WATCHES streams: two rounds of them.)"""
    ops = [
        {"op": "set", "key": "a:1", "value": "one"},
        {"op": "set", "key": "b:1", "value": "two"},
        {"op": "set", "key": "a:x1", "value": "three"},
        {"op": "increment", "key": "ab", "by": 2},
    ]
    rounds = [
        # Two streams share "a:"'s form; "a" also takes "ab".
        {"a": ["a:1", "a:x1", "ab"], "a:": ["a:1", "a:x1"], "a: ": ["a:1", "a:x1"]},
        # "z:" has no event of the batch: it is sent nothing until its own.
        {"": ["a:1", "b:1", "a:x1", "ab", "z:1"], "b:": ["b:1"], "z:": ["z:1"]},
    ]
    for expected in rounds:
        streams = {p: watch(port, alice, bucket, f"&prefix={p.strip()}") for p in expected}
        try:
            status, _, content = call(
                port,
                alice,
                "POST",
                f"/v1/{bucket}?format=json",
                json.dumps({"ops": ops}),
                **{"Content-Type": "application/json"},
            )
            assert status == 200, content
            put(port, alice, bucket, "z:1", "after")  # a batch of one
            for prefix, stream in streams.items():
                events = stream.events(len(expected[prefix]))
                assert [e.data["key"] for e in events] == expected[prefix], prefix
                positions = [e.position for e in events]
                assert positions == sorted(set(positions)), prefix
        finally:
            for stream in streams.values():
                stream.close()


def test_a_reader_too_far_behind_is_cut_off_alone_and_resumes_from_its_last_id(port, alice, bucket):
    """A client that stops reading fills its connection; the hub keeps its events until they
    pass MAX_PENDING_BYTES (4 MiB), then ends that stream alone: a reader beside it gets every
    event meanwhile, and the slow one resumes from the last id it received, losing nothing."""
    slow = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
    slow.sendall(
        f"GET /v1/{bucket}?watch=true&prefix=big/ HTTP/1.1\r\nHost: t\r\n"
        f"X-Api-Key: {alice.key}\r\n\r\n".encode()
    )
    count, value = 24, "x" * 1_000_000  # 24 MB of events: past the pending bound and buffers
    with watch(port, alice, bucket, "&prefix=big/") as beside:
        seen: list = []
        reading = threading.Thread(target=lambda: seen.extend(beside.events(count)))
        reading.start()
        for n in range(count):
            put(port, alice, bucket, f"big/{n:02}", value)
        reading.join(PATIENCE)
    assert [e.data["key"] for e in seen] == [f"big/{n:02}" for n in range(count)]

    received = b""
    while True:  # what reached it, until the server ends its stream
        try:
            chunk = slow.recv(1 << 20)
        except ConnectionError:
            break
        if not chunk:
            break
        received += chunk
    slow.close()
    ids = [int(i) for i in re.findall(rb"\nid: (\d+)\nevent: put\n", received)]
    keys = [k.decode() for k in re.findall(rb'"key": "(big/\d+)"', received)]
    assert keys[: len(ids)] == [f"big/{n:02}" for n in range(len(ids))]
    assert 0 < len(ids) < count, "the slow reader was not cut off"
    with watch(port, alice, bucket, "&prefix=big/", last_event_id=ids[-1]) as resumed:
        rest = resumed.events(count - len(ids))
    assert [e.data["key"] for e in rest] == [f"big/{n:02}" for n in range(len(ids), count)]


def test_a_binary_value_is_sent_in_base64(port, alice, bucket):
    with watch(port, alice, bucket) as stream:
        status, _, _ = call(
            port,
            alice,
            "POST",
            f"/v1/{bucket}?format=json",
            json.dumps(
                {"ops": [{"op": "set", "key": "bin", "value": "/w==", "encoding": "base64"}]}
            ),
            **{"Content-Type": "application/json"},
        )
        assert status == 200
        (event,) = stream.events(1)
    assert (event.data["value"], event.data["encoding"]) == ("/w==", "base64")


def test_a_stream_resumes_after_its_last_event_id_or_since(port, alice, bucket):
    with watch(port, alice, bucket) as stream:
        put(port, alice, bucket, "k", "1")
        (first,) = stream.events(1)
    put(port, alice, bucket, "k", "2")
    put(port, alice, bucket, "j", "3")
    for options in ({"last_event_id": first.id}, {"query": f"&since={first.id}"}):
        query = options.pop("query", "")
        with watch(port, alice, bucket, query, **options) as again:
            assert again.start == 1
            assert [(e.position, e.data["value"]) for e in again.events(2)] == [(2, "2"), (3, "3")]


def test_a_token_watches_only_inside_its_prefix_and_with_read_permission(port, alice, bucket):
    token = alice.token(bucket, "a")
    with Stream(port, bucket, "&prefix=b", token=token) as stream:
        assert stream.status == 403, stream.body
    writer = alice.token(bucket, "a", "write")
    with Stream(port, bucket, "&prefix=a", token=writer) as stream:
        assert stream.status == 403, stream.body
        assert b"read" in stream.body

    with Stream(port, bucket, token=token, timeout=PATIENCE) as stream:  # no prefix: its own
        assert stream.status == 200
        for key in ("b1", "ab", "a", "xa", "a2"):
            put(port, alice, bucket, key, "v")
        events = [e for e in (stream.next_block() for _ in range(4)) if e and e.event]
        while len(events) < 3:
            events.append(stream.next_event())
    assert [(e.position, e.data["key"]) for e in events] == [(2, "ab"), (3, "a"), (5, "a2")]


def test_the_stream_sends_keep_alives_while_nothing_changes(port, alice, bucket):
    with watch(port, alice, bucket) as stream:
        quiet = [stream.next_block() for _ in range(2)]
        assert [block.comments for block in quiet] == [["keep-alive"], ["keep-alive"]]
        assert all(block.event is None and block.id is None for block in quiet)
        put(port, alice, bucket, "k", "v")
        assert stream.next_event().data["key"] == "k"


def test_a_snapshot_sends_the_live_keys_then_the_changes_after_it(port, alice, bucket):
    for key in ("s:b", "s:a", "t:x"):
        put(port, alice, bucket, key, key.upper())
    put(port, alice, bucket, "s:gone", "v", "?ttl=1")
    time.sleep(1.5)  # s:gone expires, unswept: a snapshot leaves it out
    with watch(port, alice, bucket, "&prefix=s:&snapshot=true") as stream:
        assert stream.start == 4
        snapshot = stream.events(2)
        put(port, alice, bucket, "s:c", "C")
        put(port, alice, bucket, "t:y", "Y")
        put(port, alice, bucket, "s:a", "A2")
        live = stream.events(2)
    assert [(e.id, e.event, e.data["key"], e.data["value"]) for e in snapshot] == [
        (None, "put", "s:a", "S:A"),
        ("4", "put", "s:b", "S:B"),  # only the last has an id: the position it was taken at
    ]
    assert [(e.position, e.data["key"]) for e in live] == [(5, "s:c"), (7, "s:a")]


def test_the_sweep_of_expired_keys_is_sent_as_expired_deletes(port, alice, bucket):
    with watch(port, alice, bucket) as stream:
        put(port, alice, bucket, "brief", "v", "?ttl=1")
        (written,) = stream.events(1)
        assert written.data["ttl"] == 1
        time.sleep(1.5)
        assert statements.sweep_expired_items(timezone.now(), rest=0) == 1
        (gone,) = stream.events(1)
    assert (gone.position, gone.event, gone.data["key"], gone.data["reason"]) == (
        2,
        "delete",
        "brief",
        "expired",
    )


def test_a_watcher_behind_the_swept_history_is_reset_to_the_head(port, alice, bucket):
    for i in range(3):
        put(port, alice, bucket, f"k{i}", "v")
    later = timezone.now() + timedelta(seconds=settings.THISDB_WATCH_HISTORY + 60)
    assert history.sweep(later) == 3
    with watch(port, alice, bucket, last_event_id=1) as stream:
        (reset,) = stream.events(1)
        assert (reset.position, reset.event, reset.data) == (3, "reset", {"reason": "history"})
        put(port, alice, bucket, "k3", "v")
        assert change(stream.next_event())[:3] == (4, "put", "k3")
    # A position the bucket never reached is reset too.
    with watch(port, alice, bucket, "&since=99") as stream:
        (reset,) = stream.events(1)
        assert (reset.position, reset.event) == (4, "reset")


# How a stream ends.


def test_revoking_the_key_cancels_its_streams(port, alice, bucket):
    with watch(port, alice, bucket) as stream:
        put(port, alice, bucket, "k", "v")
        stream.events(1)
        lifecycle.revoke_api_key(alice.api_key)
        (cancel,) = stream.events(1)
        assert (cancel.event, cancel.data) == ("cancel", {"reason": "revoked"})
        assert ends(stream)


def test_suspending_the_account_cancels_its_streams(port, alice, bucket):
    with watch(port, alice, bucket) as stream, watch(port, alice, alice.new_bucket()) as other:
        lifecycle.suspend_account(alice.user)
        for each in (stream, other):
            (cancel,) = each.events(1)
            assert (cancel.event, cancel.data) == ("cancel", {"reason": "suspended"})
            assert ends(each)


def test_deleting_the_bucket_sends_its_keys_deletes_then_cancels(port, alice, bucket):
    for key in ("b", "a", "c"):
        put(port, alice, bucket, key, "v")
    with watch(port, alice, bucket, "&prefix=a") as narrow, watch(port, alice, bucket) as whole:
        status, _, _ = call(port, alice, "DELETE", f"/v1/{bucket}")
        assert status == 200
        events = whole.events(4)
        narrow_events = narrow.events(2)
        assert ends(whole) and ends(narrow)
    assert [(e.position, e.event, e.data.get("key"), e.data["reason"]) for e in events] == [
        (4, "delete", "a", "bucket_deleted"),
        (5, "delete", "b", "bucket_deleted"),
        (6, "delete", "c", "bucket_deleted"),
        (None, "cancel", None, "bucket_deleted"),
    ]
    assert [(e.event, e.data["reason"]) for e in narrow_events] == [
        ("delete", "bucket_deleted"),
        ("cancel", "bucket_deleted"),
    ]


# Slots.


def test_past_the_plans_watches_a_watch_is_429_and_a_closed_stream_gives_its_slot_back(
    port, alice, bucket
):
    streams = [watch(port, alice, bucket) for _ in range(MAX_WATCHES)]
    try:
        refused = Stream(port, bucket, key=alice.key)
        assert refused.status == 429, refused.body
        assert "retry-after" in refused.headers
        status, _, _ = call(port, alice, "GET", f"/v1/{bucket}?watch=true&format=json&wait=1")
        assert status == 429  # a long-poll takes a slot too
        streams.pop().close()
        # The server gives the slot back once it sees the client gone.
        for _ in range(PATIENCE * 5):
            again = Stream(port, bucket, key=alice.key, timeout=PATIENCE)
            if again.status == 200:
                streams.append(again)
                break
            assert again.status == 429
            time.sleep(0.2)
        else:
            raise AssertionError("the closed stream's slot never came back")
    finally:
        for stream in streams:
            stream.close()


def test_streams_closing_at_once_give_their_slots_back_on_a_few_redis_connections(
    port, redis_proxy
):
    """30 streams closed together: their slots come back (each account can watch again), in a
    round trip or a few for all of them, on the hub's few connections to Redis, not one each."""
    personas = [Persona(f"crowd{n}") for n in range(10)]
    streams = []
    for persona in personas:
        mine = persona.new_bucket()
        streams += [(persona, mine, watch(port, persona, mine)) for _ in range(MAX_WATCHES)]
    connections = len(redis_proxy.connections)
    for _, _, stream in streams:
        stream.close()
    for persona, mine, _ in streams[::MAX_WATCHES]:
        for _ in range(PATIENCE * 5):
            again = Stream(port, mine, key=persona.key, timeout=PATIENCE)
            again.close()
            if again.status == 200:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("a closed stream's slot never came back")
    opened = len(redis_proxy.connections) - connections
    assert opened <= 2 * watchhub.REDIS_CONNECTIONS, opened  # two workers' hubs at most


# Long-polls.


def long_poll(port, persona, bucket: str, query: str) -> dict:
    status, headers, content = call(
        port, persona, "GET", f"/v1/{bucket}?watch=true&format=json{query}"
    )
    assert status == 200, content
    assert headers["content-type"].startswith("application/json")
    return json.loads(content)


def test_a_long_poll_answers_what_changed_at_once_or_nothing_after_waiting(port, alice, bucket):
    put(port, alice, bucket, "a", "1")
    put(port, alice, bucket, "b", "2")
    # Changes there: answered at once (a wait of 60 s would outlast the client's patience).
    answer = long_poll(port, alice, bucket, "&since=0&wait=60")
    assert [(e["id"], e["type"], e["key"], e["value"]) for e in answer["events"]] == [
        ("1", "put", "a", "1"),
        ("2", "put", "b", "2"),
    ]
    assert answer["next"] == "2"
    # None: an empty answer after the wait, at the same position.
    assert long_poll(port, alice, bucket, "&since=2&wait=1") == {"events": [], "next": "2"}
    assert long_poll(port, alice, bucket, "&since=2&wait=0") == {"events": [], "next": "2"}

    # A change made while it waits ends the wait; resumed from "next", nothing is repeated.
    answers: list[dict] = []
    waiting = threading.Thread(
        target=lambda: answers.append(long_poll(port, alice, bucket, "&since=2&wait=60"))
    )
    waiting.start()
    time.sleep(0.5)
    call(port, alice, "DELETE", f"/v1/{bucket}/a")
    waiting.join(PATIENCE + 5)
    assert [(e["id"], e["type"], e["reason"]) for e in answers[0]["events"]] == [
        ("3", "delete", "deleted")
    ]
    put(port, alice, bucket, "c", "3")
    answer = long_poll(port, alice, bucket, f"&since={answers[0]['next']}&wait=60")
    assert [(e["id"], e["key"]) for e in answer["events"]] == [("4", "c")]
    # Without since it waits from the head.
    put(port, alice, bucket, "d", "4")
    assert long_poll(port, alice, bucket, "&wait=1") == {"events": [], "next": "5"}


# Notices across the two workers, and without notices.


def test_a_write_on_either_worker_reaches_a_single_watcher(port, alice, bucket):
    """One stream, on one of the workers, and writes from eight threads at once (which the two
    workers share out): a worker that never served a watch must tell of its writes too."""
    with watch(port, alice, bucket) as stream:
        writers = [
            threading.Thread(
                target=lambda w=w: [put(port, alice, bucket, f"w{w}-{i}", "v") for i in range(8)]
            )
            for w in range(8)
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        assert [change(e) for e in stream.events(64)] == rows(bucket)


def test_a_write_on_either_worker_reaches_watchers_on_both(port, alice, bucket):
    """Three streams and sixty writes, each on a new connection: the workers share them out, so
    writes and watchers meet across workers."""
    streams = [watch(port, alice, bucket) for _ in range(MAX_WATCHES)]
    try:
        for i in range(60):
            put(port, alice, bucket, f"k{i % 7}", str(i))
        expected = rows(bucket)
        assert len(expected) == 60
        for stream in streams:
            assert [change(e) for e in stream.events(60)] == expected
    finally:
        for stream in streams:
            stream.close()


def server_process(port: int, conn: http.client.HTTPConnection) -> int:
    """The pid of the server process (a worker) holding the other end of `conn` (Linux)."""
    client_port = conn.sock.getsockname()[1]
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(field.rsplit(":", 1)[1], 16) for field in fields[1:3])
            if (local, remote) == (port, client_port):
                inodes.add(f"socket:[{fields[9]}]")
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (process / "fd").iterdir()):
                return int(process.name)
        except OSError:
            continue  # gone, or not ours to read
    raise AssertionError(f"no process holds the server's end of port {client_port}")


def one_connection_to_each_worker(port: int) -> list[http.client.HTTPConnection]:
    """Two open connections, each answered once, held by the two different workers."""
    for _ in range(20):
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=PATIENCE) for _ in range(8)]

        def healthz(conn):
            conn.request("GET", "/healthz")
            conn.getresponse().read()

        threads = [threading.Thread(target=healthz, args=(conn,)) for conn in conns]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        by_worker = {server_process(port, conn): conn for conn in conns}
        if len(by_worker) == 2:
            return list(by_worker.values())
        for conn in conns:
            conn.close()
    raise AssertionError("the workers never shared out eight connections at once")


def test_a_write_on_a_worker_that_never_served_a_watch_wakes_a_watcher_on_the_other(
    tmp_path, alice, bucket
):
    """A fresh server: one worker holds the stream, the other (which has served no watch, so
    has never heard which buckets are watched) answers the writes. Only a notice can deliver
    them: the history is read hourly."""
    with served(
        database_url(), tmp_path / "server.log", **server_settings(THISDB_WATCH_POLL_SECONDS="3600")
    ) as port:
        watching, writing = one_connection_to_each_worker(port)
        with Stream(port, bucket, key=alice.key, timeout=PATIENCE, conn=watching) as stream:
            assert stream.status == 200
            stream.next_block()  # the opening
            for i in range(3):
                writing.request("POST", f"/v1/{bucket}/k{i}", b"v", {"X-Api-Key": alice.key})
                assert writing.getresponse().read() is not None
            assert [change(e) for e in stream.events(3)] == rows(bucket)
        writing.close()


class NoSubscriptions:
    """A parser for wire.Proxy that breaks every connection that subscribes: publishing works,
    listening never does (a Redis whose pub/sub is broken)."""

    def feed(self, data: bytes) -> int:
        if b"SUBSCRIBE" in data.upper():
            raise OSError("no pub/sub here")
        return 0


def test_without_notices_the_history_poll_still_delivers_every_change(tmp_path, alice, bucket):
    redis_url = urlsplit(settings.REDIS_URL)
    proxy = Proxy((redis_url.hostname, redis_url.port or 6379), NoSubscriptions)
    broken = f"redis://127.0.0.1:{proxy.port}{redis_url.path or '/0'}"
    try:
        with served(
            database_url(),
            tmp_path / "server.log",
            **server_settings(REDIS_URL=broken, THISDB_WATCH_POLL_SECONDS="1"),
        ) as port:
            streams = [watch(port, alice, bucket) for _ in range(2)]
            for i in range(20):
                put(port, alice, bucket, f"k{i % 3}", str(i))
            expected = rows(bucket)
            for stream in streams:
                assert [change(e) for e in stream.events(20)] == expected
                stream.close()
        assert b"watch notices lost (Redis)" in (tmp_path / "server.log").read_bytes()
    finally:
        proxy.close()


def test_subscriptions_killed_while_watching_lose_no_change(port, alice, bucket, redis_proxy):
    """The hubs' subscriptions are killed in Redis mid-stream (CLIENT KILL of this server's
    pub/sub connections only: the Redis may be shared). Each worker subscribes again and reads
    its feeds, so what was written meanwhile arrives, although the server polls its history
    only hourly."""
    with watch(port, alice, bucket) as stream:
        put(port, alice, bucket, "k", "0")
        stream.events(1)
        client = redis.Redis.from_url(settings.REDIS_URL)
        subscribed = [up for up, parser in redis_proxy.connections if parser.subscribed]
        assert subscribed
        for upstream in subscribed:
            try:
                client.client_kill(":".join(map(str, upstream.getsockname())))
            except redis.ResponseError:
                pass  # that one was closed already
        for i in range(1, 10):
            put(port, alice, bucket, "k", str(i))
        assert [change(e) for e in stream.events(9)] == rows(bucket)[1:]
