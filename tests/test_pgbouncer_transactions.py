"""Transactions behind PgBouncer in transaction mode (deploy/cluster/pgbouncer.sh), with
DATABASE_TRANSACTION_POOLING=true: a client's consecutive transactions land on whichever server
connection is free, so a transaction's bucket lock must live inside the transaction. Writers of
transactions and single writes share a bucket that is watched and one that is not, through
PgBouncer with fewer server connections than the web tier has clients: every answer is 200
within its timeout (a lock left on a server connection would hold the bucket's next writers
until they time out), no increment is lost, and the watched bucket's history holds each
transaction's changes together, in order, once."""

import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from tests.conftest import RUN_PREFIX
from tests.serving import PROJECT, free_port, request, served
from tests.test_outage import manage

SERVER = "127.0.0.1:5432"  # the machine's PostgreSQL, behind PgBouncer
WRITERS = 6  # threads sending transactions, beside 2 of single increments
ROUNDS = 15  # transactions each
ANSWER_SECONDS = 20  # budget: a request waiting longer than this is a lock never let go


@pytest.fixture
def bouncer():
    name = f"pgb_{os.getpid()}"
    with psycopg.connect(f"postgres://root@{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    port = free_port()
    # PgBouncer runs as postgres, which cannot reach into pytest's private tmp_path.
    folder = tempfile.mkdtemp(prefix="pgbouncer-")
    script = str(PROJECT / "deploy" / "cluster" / "pgbouncer.sh")
    # Three server connections for the web tier's eight pooled clients (2 workers x 4).
    env = {**os.environ, "PGBOUNCER_POOL_SIZE": "3"}
    subprocess.run(["bash", script, "start", folder, str(port), SERVER], check=True, env=env)
    try:
        manage(f"postgres://root@{SERVER}/{name}", "migrate", "--noinput")
        yield f"postgres://root@127.0.0.1:{port}/{name}", f"postgres://root@{SERVER}/{name}"
    finally:
        subprocess.run(["bash", script, "stop", folder, str(port), SERVER], check=True)
        shutil.rmtree(folder, ignore_errors=True)
        with psycopg.connect(f"postgres://root@{SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def call(port: int, key: str, method: str, path: str, body: object = None):
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    return request(
        port, method, path, body=data, headers={"X-Api-Key": key}, timeout=ANSWER_SECONDS
    )


def test_transactions_through_pgbouncer_in_transaction_mode(bouncer, tmp_path: Path):
    pooled, direct = bouncer
    key = manage(direct, "createapikey", "alice", "--create-user").strip().splitlines()[-1]
    with served(
        pooled,
        tmp_path / "serve.log",
        WEB_WORKERS="2",
        DATABASE_POOL_SIZE="4",
        DATABASE_PREPARED_STATEMENTS="false",
        DATABASE_TRANSACTION_POOLING="true",
        THISDB_REDIS_PREFIX=RUN_PREFIX,
        THISDB_KEY_WRITES_PER_SECOND="0",  # the counters are written many times a second
        THISDB_REQUESTS_PER_HOUR="100000",
    ) as port:
        buckets = [call(port, key, "POST", "/v1/")[2].decode() for _ in range(2)]
        watched, unwatched = buckets
        # A long-poll makes the bucket watched: from here its changes are recorded.
        status, _, body = call(port, key, "GET", f"/v1/{watched}?watch=true&format=json&wait=0")
        assert status == 200, body
        start = json.loads(body)["next"]

        statuses: Counter = Counter()
        lock = threading.Lock()

        def transactions(writer: int) -> None:
            for n in range(ROUNDS):
                for bucket in buckets:
                    ops = [
                        {"op": "increment", "key": "total", "by": 1},
                        {"op": "set", "key": f"w{writer}-{n}", "value": f"{writer}:{n}"},
                        {"op": "increment", "key": f"w{writer}", "by": 1},
                    ]
                    status, _, _ = call(port, key, "POST", f"/v1/{bucket}", {"ops": ops})
                    with lock:
                        statuses[status] += 1

        def increments() -> None:
            for _ in range(ROUNDS * 2):
                for bucket in buckets:
                    status, _, _ = call(port, key, "PATCH", f"/v1/{bucket}/total", b"1")
                    with lock:
                        statuses[status] += 1

        threads = [threading.Thread(target=transactions, args=(w,)) for w in range(WRITERS)]
        threads += [threading.Thread(target=increments) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        sent = WRITERS * ROUNDS * 2 + 2 * ROUNDS * 2 * 2
        assert statuses == {200: sent}, statuses
        for bucket in buckets:
            total = call(port, key, "GET", f"/v1/{bucket}/total")[2]
            assert int(total) == WRITERS * ROUNDS + 2 * ROUNDS * 2
            for writer in range(WRITERS):
                assert call(port, key, "GET", f"/v1/{bucket}/w{writer}")[2] == str(ROUNDS).encode()

        events = changes_after(port, key, watched, start)
        # Each transaction's three changes are consecutive (total, its key, its counter, in op
        # order), every change once.
        ids = [int(event["id"]) for event in events]
        assert ids == list(range(ids[0], ids[0] + len(ids)))
        keys = [event["key"] for event in events]
        assert keys.count("total") == WRITERS * ROUNDS + 2 * ROUNDS * 2
        for i, name in enumerate(keys):
            if name.startswith("w") and "-" in name:
                writer = name[1:].split("-")[0]
                assert keys[i - 1] == "total" and keys[i + 1] == f"w{writer}", keys[i - 1 : i + 2]
        assert len({k for k in keys if "-" in k}) == WRITERS * ROUNDS


def changes_after(port: int, key: str, bucket: str, since: str) -> list[dict]:
    events: list[dict] = []
    while True:
        path = f"/v1/{bucket}?watch=true&format=json&since={since}&wait=0"
        status, _, body = call(port, key, "GET", path)
        assert status == 200, body
        page = json.loads(body)
        if not page["events"]:
            return events
        events += page["events"]
        since = page["next"]
