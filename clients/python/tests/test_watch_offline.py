"""Watching a prefix without the platform: a stand-in server gives streams of Server-Sent Events
as the API's contract writes them, and drops them, so that what the client asks for when it
connects again, and what it gives, can be checked event by event."""

import asyncio
import json
import time

import anyio
import pytest
import thisdb
import thisdb.watch
from event_stream import block, delete, opening, put, query
from stand_in import DROP, END, Seen, answering, streaming
from thisdb import Delete, Put, Reset
from thisdb._sse import Message, Reader

BUCKET = "B" * 20
JSON = {"Content-Type": "application/json"}


@pytest.fixture(autouse=True)
def _no_thisdb_env(monkeypatch):
    for name in ("THISDB_URL", "THISDB_API_KEY", "THISDB_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def take(watch, count):
    return [next(watch) for _ in range(count)]


# The reader of the stream


def test_the_reader_takes_blocks_across_chunks_and_every_line_ending():
    reader = Reader()
    stream = [b"\xef\xbb\xbf: hello\r\nid: 1", b"\r", b"\nevent: put\rdata: a\ndata: b\r\n", b"\n"]
    stream += [b": keep-alive\n\n", b"retry: 2000\nid\n\n", b"data:x\nfield: ignored\n\n"]
    got = [message for chunk in stream for message in reader.feed(chunk)]
    assert got == [
        Message(event="put", data="a\nb", id="1"),
        Message(id="", retry=2000),  # a bare `id` line: an empty id
        Message(data="x"),
    ]
    assert list(reader.feed(b"data: half a block\n")) == []  # waits for its blank line


# Resuming


def test_a_dropped_stream_is_resumed_from_the_last_position_with_every_event_once():
    first = [opening(41), put(42, "p1"), delete(43, "p1"), b'id: 44\nevent: put\ndata: {"ke', DROP]
    # The server starts again after the Last-Event-ID, and here gives 43 twice (a server may):
    # the client gives it once.
    second = [opening(43), delete(43, "p1"), put(44, "p2", "w", "3", 60), put(45, "p3")]
    sent: list[Seen] = []
    with streaming([first, second], sent) as url:
        with thisdb.Client("tdb_x", base_url=url) as db:
            with db.watch(BUCKET, prefix="p") as watch:
                assert watch.position == "41"  # the stream is open: it gave its position
                events = take(watch, 4)
                assert (watch.position, watch.reconnects) == ("45", 1)

    assert events == [
        Put("42", "p1", b"v", "1", 0),
        Delete("43", "p1", "2", "deleted"),
        Put("44", "p2", b"w", "3", 60),
        Put("45", "p3", b"v", "1", 0),
    ]
    assert [query(seen) for seen in sent] == [
        {"watch": "true", "prefix": "p"},
        {"watch": "true", "prefix": "p", "since": "43"},
    ]
    assert [seen.headers.get("last-event-id") for seen in sent] == [None, "43"]
    assert all(seen.headers["accept"] == "text/event-stream" for seen in sent)
    assert all(seen.headers["x-api-key"] == "tdb_x" for seen in sent)
    assert sent[0].path.startswith(f"/v1/{BUCKET}?")


def test_a_watch_since_a_position_and_one_that_ends_cleanly_or_fails_with_5xx_go_on():
    unavailable = (503, {"Retry-After": "0", **JSON}, b'{"error": "restarting"}')
    failed = (500, {"Content-Type": "text/html"}, b"<h1>oops</h1>")
    first = [opening(7), put(8, "a"), END]
    sent: list[Seen] = []
    with streaming([first, unavailable, failed, [opening(8), put(9, "b")]], sent) as url:
        with thisdb.Client("tdb_x", base_url=url) as db:
            with db.watch(BUCKET, since=7) as watch:
                assert [event.position for event in take(watch, 2)] == ["8", "9"]
                assert watch.reconnects == 1  # two refusals, one stream
    assert [query(seen).get("since") for seen in sent] == ["7", "8", "8", "8"]
    assert [seen.headers.get("last-event-id") for seen in sent] == [None, "8", "8", "8"]
    assert "prefix" not in query(sent[0])


def test_a_silent_stream_is_given_up_and_connected_again(monkeypatch):
    """No keep-alive within the read timeout (45 s; here less): the connection is dead."""
    monkeypatch.setattr(thisdb.watch, "WATCH_READ_TIMEOUT", 0.5)
    sent: list[Seen] = []
    with streaming([[opening(1)], [opening(1), put(2, "k")]], sent) as url:
        with thisdb.Client("tdb_x", base_url=url) as db:
            with db.watch(BUCKET) as watch:
                started = time.monotonic()
                assert next(watch).position == "2"
                assert time.monotonic() - started >= 0.5
    assert [seen.headers.get("last-event-id") for seen in sent] == [None, "1"]


def test_keep_alives_and_unknown_events_are_passed_over_and_values_decoded():
    binary = bytes(range(250, 256))
    encoded = {"key": "bin", "value": "+vv8/f7/", "encoding": "base64", "version": "5", "ttl": 9}
    pieces = [
        opening(1),
        b": keep-alive\n\n",
        block(2, "put", encoded),
        block(3, "touch", {"key": "x"}),  # a newer server's kind of event
        b": keep-alive\n\n",
        put(4, "text", "Zo\u00eb \u2603"),
    ]
    with streaming([pieces]) as url:
        with thisdb.Client("tdb_x", base_url=url) as db:
            with db.watch(BUCKET) as watch:
                events = take(watch, 2)
                assert watch.position == "4"
    assert events == [Put("2", "bin", binary, "5", 9), Put("4", "text", "Zoë ☃".encode(), "1", 0)]


def test_a_reset_says_to_list_again_and_the_stream_goes_on():
    pieces = [opening(3), block(57, "reset", {"reason": "history"}), put(58, "k")]
    with streaming([pieces]) as url:
        with thisdb.Client("tdb_x", base_url=url) as db:
            with db.watch(BUCKET, since=3) as watch:
                assert take(watch, 2) == [Reset("57", "history"), Put("58", "k", b"v", "1", 0)]


def test_a_cancel_ends_the_watch_for_good():
    pieces = [opening(1), put(2, "k"), block(event="cancel", data={"reason": "revoked"})]
    sent: list[Seen] = []
    with streaming([pieces, [opening(2)]], sent) as url:
        with thisdb.Client(token="t0k", base_url=url) as db:
            watch = db.watch(BUCKET)
            assert next(watch) == Put("2", "k", b"v", "1", 0)
            with pytest.raises(thisdb.WatchCancelled) as caught:
                next(watch)
            assert watch.closed
            assert list(watch) == []  # and it stays ended
    assert (caught.value.reason, caught.value.position) == ("revoked", "2")
    assert str(caught.value) == "the server ended the watch: revoked"
    assert isinstance(caught.value, thisdb.ThisDBError)
    assert len(sent) == 1 and sent[0].headers["x-token"] == "t0k"


# Snapshots


def test_a_snapshot_cut_off_starts_again_after_a_reset():
    first = [opening(10), put(None, "a"), put(None, "b"), DROP]
    # Asked again the same way: the whole snapshot (b changed meanwhile), then the changes.
    second = [opening(12), put(None, "a"), put(None, "b", "new", "2"), put(12, "c")]
    second += [delete(13, "a")]
    sent: list[Seen] = []
    with streaming([first, second], sent) as url:
        with thisdb.Client("tdb_x", base_url=url) as db:
            with db.watch(BUCKET, prefix="", snapshot=True) as watch:
                events = take(watch, 7)
                assert watch.position == "13"
    assert events == [
        Put(None, "a", b"v", "1", 0),
        Put(None, "b", b"v", "1", 0),
        Reset(None, "snapshot"),  # forget a and b: the snapshot starts again
        Put(None, "a", b"v", "1", 0),
        Put(None, "b", b"new", "2", 0),
        Put("12", "c", b"v", "1", 0),  # the snapshot's last key carries its position
        Delete("13", "a", "2", "deleted"),
    ]
    assert [query(seen) for seen in sent] == [{"watch": "true", "snapshot": "true"}] * 2
    assert [seen.headers.get("last-event-id") for seen in sent] == [None, None]


def test_after_its_snapshot_a_watch_goes_on_from_its_position_without_one():
    first = [opening(10), put(None, "a"), put(10, "b"), put(11, "c"), DROP]
    sent: list[Seen] = []
    with streaming([first, [opening(11), put(12, "d")]], sent) as url:
        with thisdb.Client("tdb_x", base_url=url) as db:
            with db.watch(BUCKET, snapshot=True) as watch:
                positions = [event.position for event in take(watch, 4)]
    assert positions == [None, "10", "11", "12"]  # the last key at the opening's position
    assert query(sent[1]) == {"watch": "true", "since": "11"}
    assert sent[1].headers["last-event-id"] == "11"


# Refusals


def test_a_refusal_at_open_raises_the_usual_error():
    answers = [
        (403, JSON, b'{"error": "token out of scope"}'),
        (404, JSON, b'{"error": "bucket not found"}'),
        (429, {"Retry-After": "30", **JSON}, b'{"error": "too many open watches"}'),
        (400, JSON, b'{"error": "since: not a position"}'),
        (200, {"Content-Type": "text/plain"}, b"k1\nk2\n"),  # a server that cannot watch
        (404, {"Content-Type": "text/html"}, b"<html>Not Found</html>"),
    ]
    with streaming(answers) as url:
        with thisdb.Client("tdb_x", base_url=url) as db:
            with pytest.raises(thisdb.Forbidden, match="token out of scope"):
                next(db.watch(BUCKET))
            with pytest.raises(thisdb.NotFound, match="bucket not found"):
                with db.watch(BUCKET):
                    pass
            with pytest.raises(thisdb.RateLimited) as caught:
                next(db.watch(BUCKET))
            assert caught.value.retry_after == 30
            with pytest.raises(thisdb.BadRequest):
                next(db.watch(BUCKET))
            with pytest.raises(thisdb.UnexpectedResponse, match="this server cannot watch"):
                next(db.watch(BUCKET))
            with pytest.raises(thisdb.NotTheAPI):
                next(db.watch(BUCKET))


def test_a_refusal_when_connecting_again_raises_but_a_429_asking_little_is_waited_out():
    too_many = (429, {"Retry-After": "0", **JSON}, b'{"error": "too many open watches"}')
    gone = (404, JSON, b'{"error": "bucket not found"}')
    connections = [[opening(1), DROP], too_many, [opening(1), put(2, "k"), DROP], gone]
    with streaming(connections) as url:
        with thisdb.Client("tdb_x", base_url=url) as db:
            watch = db.watch(BUCKET)
            assert next(watch).position == "2"
            with pytest.raises(thisdb.NotFound):
                next(watch)
            assert watch.closed


def test_arguments_and_the_network_are_checked_as_for_any_call():
    with thisdb.Client("tdb_x", base_url="http://127.0.0.1:9") as db:
        with pytest.raises(thisdb.InvalidArgument, match="not a position"):
            db.watch(BUCKET, since="4x")
        with pytest.raises(thisdb.InvalidArgument, match="bucket cannot be empty"):
            db.watch("")
        with pytest.raises(TypeError):
            db.watch(BUCKET, prefix=None)
        with pytest.raises(thisdb.NetworkError, match="^GET http://127.0.0.1:9/v1/"):
            next(db.watch(BUCKET))
    with pytest.raises(thisdb.ClientClosed):
        next(db.watch(BUCKET))


# The async client


def test_the_async_watch_resumes_the_same_way():
    first = [opening(41), put(42, "p1"), b"id: 43\nevent: delete\n", DROP]
    second = [opening(42), delete(43, "p1"), put(44, "p2")]
    sent: list[Seen] = []

    async def scenario(url):
        async with thisdb.AsyncClient("tdb_x", base_url=url) as db:
            async with db.watch(BUCKET, prefix="p") as watch:
                events = []
                async for event in watch:
                    events.append(event)
                    if len(events) == 3:
                        break
                return events, watch.position, watch.reconnects

    with streaming([first, second], sent) as url:
        events, position, reconnects = asyncio.run(scenario(url))
    assert [event.position for event in events] == ["42", "43", "44"]
    assert (position, reconnects) == ("44", 1)
    assert [seen.headers.get("last-event-id") for seen in sent] == [None, "42"]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_async_watch_raises_on_cancel_and_refusals(backend):
    cancelled = [opening(1), block(event="cancel", data={"reason": "bucket_deleted"})]
    refused = (403, JSON, b'{"error": "forbidden"}')

    async def scenario(url):
        async with thisdb.AsyncClient("tdb_x", base_url=url) as db:
            with pytest.raises(thisdb.WatchCancelled, match="bucket_deleted"):
                async for _ in db.watch(BUCKET):
                    pass
            with pytest.raises(thisdb.Forbidden):
                async with db.watch(BUCKET):
                    pass

    with streaming([cancelled, refused]) as url:
        anyio.run(scenario, url, backend=backend)


# The long-poll


def test_changes_waits_for_the_events_after_a_position():
    body = {
        "events": [
            {"id": "42", "type": "put", "key": "p1", "value": "v", "version": "18", "ttl": 0},
            {"id": "43", "type": "delete", "key": "p1", "version": "19", "reason": "expired"},
            {"id": "57", "type": "reset", "reason": "history"},
        ],
        "next": "57",
    }
    answers = [(200, JSON, json.dumps(body).encode()), (200, JSON, b'{"events": [], "next": "57"}')]
    seen: list[tuple[str, str]] = []
    with answering(answers, seen) as url:
        with thisdb.Client("tdb_x", base_url=url, timeout=0.5) as db:
            changes = db.changes(BUCKET, since=41, prefix="p", wait=5)
            assert changes.events == [
                Put("42", "p1", b"v", "18", 0),
                Delete("43", "p1", "19", "expired"),
                Reset("57", "history"),
            ]
            assert changes.next == "57"
            assert len(db.changes(BUCKET, since=changes.next, wait=0)) == 0
            with pytest.raises(thisdb.InvalidArgument, match="0 to 60"):
                db.changes(BUCKET, since=1, wait=61)
    assert seen == [
        ("GET", f"/v1/{BUCKET}?watch=true&format=json&wait=5&since=41&prefix=p"),
        ("GET", f"/v1/{BUCKET}?watch=true&format=json&wait=0&since=57"),
    ]
