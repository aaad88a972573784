"""A master of the cluster killed (SIGKILL) under steady load on two web nodes: its replica is
promoted, no answer is a 5xx meanwhile (the limits fail open, api.limits), the limits count again
within seconds, and the watch notices go on through the promoted master."""

import os
import signal
import threading
import time

import pytest
import redis
from django.db import connection

from api import history, notify
from tests.conftest import Persona
from tests.serving import request, served
from tests.sse import Stream

from .conftest import cluster_environment

pytestmark = pytest.mark.django_db(transaction=True)

LOAD_THREADS = 4
BACK_WITHIN_SECONDS = 20  # promotion (node timeout 2 s, measured about 4.5 s) plus retries
PATIENCE = 20


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def persona_on(cluster, port: int) -> Persona:
    """An account whose slot the master on `port` holds."""
    for n in range(1, 50):
        persona = Persona(f"user{n}")
        if cluster.master_port(f"{{{persona.user.pk}}}") == port:
            return persona
    raise AssertionError(f"no account's slot is on {port}")


def remaining(port: int, persona: Persona, bucket: str) -> int | None:
    status, headers, body = request(port, "GET", f"/v1/{bucket}", None, {"X-Api-Key": persona.key})
    assert status == 200, body
    value = {name.lower(): v for name, v in headers.items()}.get("x-ratelimit-remaining")
    return None if value is None else int(value)


@pytest.fixture
def restored(cluster):
    yield cluster
    cluster.start()  # the killed node rejoins, as a replica


def test_a_killed_master_is_replaced_without_a_5xx_and_limits_return(restored, tmp_path):
    cluster = restored
    channel = notify.channel()
    doomed = cluster.master_port(channel)  # the watch channel's master, and alice's
    alice = persona_on(cluster, doomed)
    bucket = alice.new_bucket(default_ttl=0)
    history.start_watching(bucket)
    node = cluster_environment(
        cluster,
        THISDB_WATCH_POLL_SECONDS="3600",  # changes reach the stream only by a notice
        THISDB_KEY_WRITES_PER_SECOND="0",
        THISDB_REQUESTS_PER_HOUR="1000000",  # thousands of answers: none may be a 429 either
        WEB_WORKERS="1",
        WEB_THREADS="2",
    )
    answers: list[int] = []
    stop = threading.Event()

    def load(port: int, thread: int) -> None:
        n = 0
        while not stop.is_set():
            key = f"load{thread}-{n % 10}"
            if n % 2:
                status, _, _ = request(
                    port, "POST", f"/v1/{bucket}/{key}", b"v", {"X-Api-Key": alice.key}
                )
            else:
                status, _, _ = request(port, "GET", f"/v1/{bucket}", None, {"X-Api-Key": alice.key})
            answers.append(status)
            n += 1

    with (
        served(database_url(), tmp_path / "a.log", **node) as a,
        served(database_url(), tmp_path / "b.log", **node) as b,
        Stream(b, bucket, key=alice.key, timeout=PATIENCE) as stream,
    ):
        assert stream.next_block().comments == ["watching"]
        assert remaining(a, alice, bucket) is not None  # counted before the kill
        threads = [
            threading.Thread(target=load, args=((a, b)[t % 2], t)) for t in range(LOAD_THREADS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(1)

        os.kill(cluster.pid(doomed), signal.SIGKILL)
        killed = time.monotonic()
        promoted = back = None
        while time.monotonic() - killed < BACK_WITHIN_SECONDS:
            if promoted is None and cluster.master_port(channel) != doomed:
                promoted = time.monotonic() - killed
            if promoted is not None and remaining(a, alice, bucket) is not None:
                back = time.monotonic() - killed
                break
            time.sleep(0.2)
        time.sleep(1)
        stop.set()
        for thread in threads:
            thread.join()

        print(f"promoted after {promoted} s, limits back after {back} s, {len(answers)} answers")
        assert promoted is not None, "the replica was not promoted"
        assert back is not None, f"limits did not count again within {BACK_WITHIN_SECONDS} s"
        assert answers and set(answers) == {200}, sorted(set(answers))
        # Counting again, exactly: one request, one less remaining.
        counts = [remaining(a, alice, bucket) for _ in range(3)]
        assert counts[0] - counts[1] == counts[1] - counts[2] == 1, counts

        # Both hubs listen on the promoted master, and a write on A reaches the stream on B.
        shard = redis.Redis(port=cluster.master_port(channel))
        deadline = time.monotonic() + PATIENCE
        while shard.execute_command("PUBSUB", "SHARDNUMSUB", channel)[1] < 2:
            assert time.monotonic() < deadline, "the hubs did not subscribe again"
            time.sleep(0.2)
        status, _, _ = request(a, "POST", f"/v1/{bucket}/after", b"v", {"X-Api-Key": alice.key})
        assert status == 200
        seen = set()
        while "after" not in seen:
            block = stream.next_block()
            assert block is not None
            if block.event == "put":
                seen.add(block.data["key"])
