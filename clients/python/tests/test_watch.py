"""Watching a prefix against the platform served by its production front (granian, which streams
the events as they come): writes seen as events, going on from a position, snapshots, a token's
scope, the async client, and `thisdb watch`."""

import asyncio
import json
import os
import signal
import subprocess

import pytest
import thisdb
from thisdb import Delete, Put
from tool_runs import THISDB


@pytest.fixture(scope="session")
def stream_server(platform) -> str:
    """The platform's URL on granian (the production front, which holds watch streams)."""
    return platform.stream_url


@pytest.fixture
def db(stream_server, carol):
    with thisdb.Client(carol.key, base_url=stream_server, timeout=30) as client:
        yield client


def take(watch, count):
    return [next(watch) for _ in range(count)]


def test_writes_under_the_prefix_come_as_events_in_order(db):
    bucket = db.create_bucket(default_ttl=0)
    with db.watch(bucket, prefix="p") as watch:
        start = int(watch.position)
        version = db.set_versioned(bucket, "p1", "v")
        db.set(bucket, "other", "not watched")
        db.set(bucket, "p2", bytes([0xFF, 0]), ttl=600)
        db.increment(bucket, "p3", by=5)
        db.delete(bucket, "p1")
        events = take(watch, 4)
    put, binary, counted, deleted = events
    assert (put.key, put.value, put.version, put.ttl) == ("p1", b"v", version, 0)
    assert (binary.key, binary.value, 590 <= binary.ttl <= 600) == ("p2", b"\xff\x00", True)
    assert (counted.key, counted.value) == ("p3", b"5")
    assert isinstance(deleted, Delete) and (deleted.key, deleted.reason) == ("p1", "deleted")
    positions = [int(event.position) for event in events]
    assert start < positions[0] and positions == sorted(set(positions))
    assert watch.position == events[-1].position


def test_a_transaction_s_changes_have_consecutive_positions(db):
    bucket = db.create_bucket()
    with db.watch(bucket) as watch:
        with db.transaction(bucket) as tx:
            tx.set("a", "1")
            tx.set("b", "2")
            tx.delete_prefix("none:")
        first, second = take(watch, 2)
    assert int(second.position) == int(first.position) + 1


def test_a_watch_goes_on_from_a_position_kept_earlier(db):
    bucket = db.create_bucket()
    with db.watch(bucket) as watch:
        db.set(bucket, "k", "1")
        assert next(watch).value == b"1"
        kept = watch.position
    db.set(bucket, "k", "2")
    db.delete(bucket, "k")
    with db.watch(bucket, since=kept) as again:
        events = take(again, 2)
    assert [type(event) for event in events] == [Put, Delete]
    assert events[0].value == b"2"
    changes = db.changes(bucket, since=kept, wait=0)
    assert changes.events == events and changes.next == events[-1].position


def test_a_snapshot_then_the_changes(db):
    bucket = db.create_bucket(default_ttl=0)
    for key in ("s:a", "s:b", "s:c", "t:x"):
        db.set(bucket, key, key.upper())
    with db.watch(bucket, prefix="s:", snapshot=True) as watch:
        snapshot = take(watch, 3)
        db.set(bucket, "s:d", "D")
        change = next(watch)
    assert sorted((event.key, event.value) for event in snapshot) == [
        ("s:a", b"S:A"),
        ("s:b", b"S:B"),
        ("s:c", b"S:C"),
    ]
    assert [event.position is None for event in snapshot] == [True, True, False]
    assert change.key == "s:d" and int(change.position) > int(snapshot[-1].position)


def test_a_token_watches_within_its_prefix_only(db, stream_server):
    bucket = db.create_bucket()
    token = db.create_token(bucket, "user:1:", "read", 600)
    with thisdb.Client(token=token, base_url=stream_server) as scoped:
        with pytest.raises(thisdb.Forbidden):
            with scoped.watch(bucket, prefix="user:"):
                pass
        with scoped.watch(bucket, prefix="user:1:") as watch:
            db.set(bucket, "user:1:name", "ann")
            assert next(watch).key == "user:1:name"
    with pytest.raises(thisdb.NotFound):
        with db.watch("Z" * 20):
            pass


def test_deleting_the_bucket_ends_the_watch(db):
    bucket = db.create_bucket()
    db.set(bucket, "k", "v")
    with db.watch(bucket) as watch:
        db.delete_bucket(bucket)
        with pytest.raises(thisdb.WatchCancelled) as caught:
            for _event in watch:
                pass
    assert caught.value.reason == "bucket_deleted"


def test_the_async_client_watches(stream_server, carol):
    async def first_two(watch):
        return [await watch.__anext__(), await watch.__anext__()]

    async def run():
        async with thisdb.AsyncClient(carol.key, base_url=stream_server) as adb:
            bucket = await adb.create_bucket()
            async with adb.watch(bucket, prefix="k") as watch:
                await adb.set(bucket, "k1", "v")
                await adb.delete(bucket, "k1")
                return await first_two(watch)

    put, deleted = asyncio.run(run())
    assert (put.key, put.value, deleted.key) == ("k1", b"v", "k1")


def test_the_tool_prints_each_event_and_stops_on_ctrl_c(db, stream_server, carol, home):
    bucket = db.create_bucket()
    with db.watch(bucket) as watch:
        start = watch.position  # the tool starts there, whenever its stream opens
    env = {**os.environ, "THISDB_URL": stream_server, "THISDB_API_KEY": carol.key}
    watcher = subprocess.Popen(
        [THISDB, "watch", bucket, "p", "--since", start, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        db.set(bucket, "p1", "v")
        db.set(bucket, "p2", "w")
        records = [json.loads(watcher.stdout.readline()) for _ in range(2)]
        watcher.send_signal(signal.SIGINT)
        out, err = watcher.communicate(timeout=30)
    finally:
        watcher.kill()
    assert [(r["type"], r["key"], r["value"]) for r in records] == [
        ("put", "p1", "v"),
        ("put", "p2", "w"),
    ]
    assert watcher.returncode == 0
    assert json.loads(err) == {"position": records[-1]["id"]}
