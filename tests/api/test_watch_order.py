"""Watchers see every change of a bucket once, in commit order, whatever the writers do at once and
however often the watchers drop their connection and resume (the production web tier, two
workers).

Eight writers set, increment and delete keys, alone and in transactions, many of them the same
keys, while twenty watchers read the bucket's stream, hang up at random moments (between events
or in the middle of one) and resume with Last-Event-ID. At the end each watcher's changes are the
bucket's history, positions 1..N without a gap or a repeat; each transaction's changes sit side
by side in its op order; and the last change of each key is what the key holds now."""

import json
import random
import threading

import pytest
from django.db import connection

from tests.api.test_watch import database_url, server_settings
from tests.conftest import Persona
from tests.serving import request, served
from tests.sse import Stream

pytestmark = pytest.mark.django_db(transaction=True)

WRITERS = 8
STEPS = 30  # requests each writer makes
WATCHERS = 20
SHARED = [f"s{i}" for i in range(6)]  # keys every writer sets and deletes
COUNTERS = [f"c{i}" for i in range(3)]  # keys every writer increments
PATIENCE = 30  # seconds a watcher waits for a byte (keep-alives come every second)


class Writer:
    def __init__(self, port: int, persona: Persona, bucket: str, number: int, seed: int):
        self.port, self.persona, self.bucket, self.number = port, persona, bucket, number
        self.random = random.Random(seed)
        self.own: set[str] = set()  # this writer's own keys that exist now
        self.transactions: list[tuple[str, list[tuple[str, str]]]] = []  # (marker, changes)
        self.error: BaseException | None = None

    def call(self, method: str, path: str, body: str | None = None, **headers) -> int:
        for _ in range(10):  # a transaction that lost a race too often is 503: send it again
            status, _, content = request(
                self.port,
                method,
                f"/v1/{self.bucket}{path}",
                None if body is None else body.encode(),
                {"X-Api-Key": self.persona.key, **headers},
                timeout=PATIENCE,
            )
            if status != 503:
                assert status == 200 or (method, status) == ("DELETE", 404), (status, content)
                return status
        raise AssertionError(f"{method} {path} was 503 ten times")

    def run(self) -> None:
        try:
            for step in range(STEPS):
                self.step(step)
        except BaseException as exc:
            self.error = exc

    def step(self, step: int) -> None:
        rng = self.random
        choice = rng.random()
        if choice < 0.25:
            self.call("POST", f"/{rng.choice(SHARED)}", f"w{self.number}-{step}")
        elif choice < 0.4:
            self.call("PATCH", f"/{rng.choice(COUNTERS)}", f"+{rng.randint(1, 9)}")
        elif choice < 0.5:
            self.call("DELETE", f"/{rng.choice(SHARED)}")  # maybe absent: 404, no change
        elif choice < 0.6:
            key = f"w{self.number}-k{rng.randint(0, 3)}"
            self.call("POST", f"/{key}", "own")
            self.own.add(key)
        else:
            self.transaction(step)

    def transaction(self, step: int) -> None:
        """Sets, increments and deletes that all change something: the first set carries a
        marker the history is searched for."""
        rng = self.random
        marker = f"tx-w{self.number}-{step}"
        first = f"w{self.number}-t{step}"
        ops = [{"op": "set", "key": first, "value": marker}]
        changes = [("put", first)]
        for _ in range(rng.randint(1, 5)):  # a transaction writes a key at most once
            kind = rng.choice(["set", "increment", "delete"])
            written = {key for _, key in changes}
            if kind == "set" and (key := rng.choice(SHARED)) not in written:
                ops.append({"op": "set", "key": key, "value": marker})
                changes.append(("put", key))
            elif kind == "increment" and (key := rng.choice(COUNTERS)) not in written:
                ops.append({"op": "increment", "key": key, "by": rng.randint(1, 9)})
                changes.append(("put", key))
            elif kind == "delete" and self.own:
                key = sorted(self.own)[rng.randrange(len(self.own))]
                self.own.discard(key)
                ops.append({"op": "delete", "key": key})
                changes.append(("delete", key))
        body = json.dumps({"ops": ops})
        self.call("POST", "?format=json", body, **{"Content-Type": "application/json"})
        self.own.add(first)
        self.transactions.append((marker, changes))


class Watcher:
    """Reads the stream, hangs up at random and resumes from the last event it saw whole."""

    def __init__(self, port: int, persona: Persona, bucket: str, seed: int, done):
        self.port, self.persona, self.bucket = port, persona, bucket
        self.random = random.Random(seed)
        self.done = done  # -> the last position, once the writers have finished
        self.seen: list[tuple] = []
        self.connections = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.finished():
                self.session()
        except BaseException as exc:
            self.error = exc

    def finished(self) -> bool:
        last = self.done()
        return last is not None and (self.seen[-1][0] if self.seen else 0) >= last

    def session(self) -> None:
        last = self.seen[-1][0] if self.seen else None
        query = "" if last is not None else "&since=0"
        stream = Stream(
            self.port,
            self.bucket,
            query,
            key=self.persona.key,
            last_event_id=last,
            timeout=PATIENCE,
        )
        self.connections += 1
        try:
            assert stream.status == 200, stream.body
            hang_up_after = self.random.randint(1, 60)  # blocks (keep-alives count)
            for _ in range(hang_up_after):
                if self.random.random() < 0.05:
                    # In the middle of an event: a part of the next block is read and dropped.
                    stream.buffer += stream.response.read1(self.random.randint(1, 40))
                    return
                block = stream.next_block()
                assert block is not None, "the stream ended"
                assert block.event in (None, "put", "delete"), block
                if block.event is not None:
                    self.seen.append(
                        (
                            block.position,
                            block.event,
                            block.data["key"],
                            int(block.data["version"]),
                            block.data.get("value"),
                        )
                    )
                if self.finished():
                    return
        finally:
            stream.close()


def history(bucket: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT position, deleted, key, version, value FROM api_change WHERE bucket_id = %s "
            "ORDER BY position",
            [bucket],
        )
        return [
            (p, "delete" if d else "put", k, ver, None if v is None else bytes(v).decode())
            for p, d, k, ver, v in cursor.fetchall()
        ]


def items(bucket: str) -> dict[str, tuple[int, str]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT key, version, value FROM api_item WHERE bucket_id = %s", [bucket])
        return {k: (ver, bytes(v).decode()) for k, ver, v in cursor.fetchall()}


def test_every_watcher_sees_the_whole_history_in_order_across_hang_ups(tmp_path):
    alice = Persona("alice")
    bucket = alice.new_bucket(default_ttl=0)
    settings = server_settings(THISDB_MAX_WATCHES="100")
    with served(database_url(), tmp_path / "server.log", **settings) as port:
        final: list[int] = []
        writers = [Writer(port, alice, bucket, n, seed=n) for n in range(WRITERS)]
        watchers = [
            Watcher(port, alice, bucket, seed=100 + n, done=lambda: final[0] if final else None)
            for n in range(WATCHERS)
        ]
        threads = [threading.Thread(target=w.run, daemon=True) for w in watchers + writers]
        for thread in threads:
            thread.start()
        for thread in threads[WATCHERS:]:
            thread.join()
        for writer in writers:
            assert writer.error is None, writer.error
        with connection.cursor() as cursor:
            cursor.execute("SELECT position FROM api_changehead WHERE bucket_id = %s", [bucket])
            final.append(cursor.fetchone()[0])
        for thread in threads[:WATCHERS]:
            thread.join(PATIENCE * 4)
            assert not thread.is_alive(), "a watcher never reached the end of the history"

    changes = history(bucket)
    # The history: positions 1..N, each once.
    assert [change[0] for change in changes] == list(range(1, len(changes) + 1))
    assert len(changes) > WRITERS * STEPS  # transactions change several keys each
    for watcher in watchers:
        assert watcher.error is None, watcher.error
        assert watcher.seen == changes
    assert sum(watcher.connections for watcher in watchers) > 3 * WATCHERS  # they did hang up

    # Each transaction's changes are side by side, in its op order.
    where: dict[str, int] = {}  # marker -> the first position with it: the first op's
    for position, _, _, _, value in changes:
        if value and value.startswith("tx-"):
            where.setdefault(value, position)
    transactions = [t for writer in writers for t in writer.transactions]
    assert transactions
    for marker, expected in transactions:
        first = where[marker]
        got = [(kind, key) for _, kind, key, _, _ in changes[first - 1 : first - 1 + len(expected)]]
        assert got == expected, marker

    # The last change of each key is what it holds now.
    now = items(bucket)
    last: dict[str, tuple] = {}
    for change in changes:
        last[change[2]] = change
    for key, (_, kind, _, version, value) in last.items():
        if kind == "put":
            assert now.get(key) == (version, value), key
        else:
            assert key not in now, key
    assert set(now) <= set(last)
