"""A connection storm against the production web tier (`make serve`): 100 concurrent clients,
some slow, against a pool of 5 connections for a PostgreSQL role allowed 5, with 8 requests at a
time inside Django. Every answer is 200, 429 or 503 (with Retry-After), never a 500; a normal
client is served after the storm; the role never holds more connections than its limit."""

import http.client
import os
import random
import threading
import time
from collections import Counter

import psycopg
import pytest
from django.db import connection

from api.models import Item
from tests.conftest import RUN_PREFIX, Persona
from tests.serving import request, served

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 100
SLOW_CLIENTS = 20  # of them: bodies a byte every 0.3 s
REQUESTS_EACH = 8
ROLE_LIMIT = 5


@pytest.fixture
def limited_role():
    """A non-superuser role for the app, as the README describes, allowed ROLE_LIMIT
    connections; yields its DATABASE_URL."""
    role = f"thisdb_storm_{os.getpid()}"
    db = connection.settings_dict
    with connection.cursor() as cursor:
        cursor.execute(f"DROP ROLE IF EXISTS {role}")
        cursor.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT {ROLE_LIMIT}")
        cursor.execute(f'GRANT CONNECT ON DATABASE "{db["NAME"]}" TO {role}')
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        cursor.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"
        )
        cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
    try:
        yield role, f"postgres://{role}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                [role],
            )
            cursor.execute(f"DROP OWNED BY {role}")
            cursor.execute(f"DROP ROLE {role}")


def owner_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def role_connections(role: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", [role])
        return cursor.fetchone()[0]


def client(port, bucket, key, number, slow, statuses, failures):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"X-Api-Key": key}
    for n in range(REQUESTS_EACH):
        try:
            kind = random.choice(("get", "set", "incr", "list"))
            if slow and n == 0:
                status, response_headers = slow_write(port, bucket, key, number)
            elif kind == "get":
                conn.request("GET", f"/v1/{bucket}/k{number}", headers=headers)
                status, response_headers = read(conn)
            elif kind == "set":
                conn.request("POST", f"/v1/{bucket}/c{number}-{n}", body=b"v", headers=headers)
                status, response_headers = read(conn)
            elif kind == "incr":
                conn.request("PATCH", f"/v1/{bucket}/n{number}", body=b"+1", headers=headers)
                status, response_headers = read(conn)
            else:
                conn.request("GET", f"/v1/{bucket}?limit=10", headers=headers)
                status, response_headers = read(conn)
        except (OSError, http.client.HTTPException) as error:
            failures.append(repr(error))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        statuses[status] += 1
        if status == 503 and "Retry-After" not in response_headers:
            failures.append(f"a 503 without Retry-After: {dict(response_headers)}")
    conn.close()


def read(conn):
    response = conn.getresponse()
    response.read()
    return response.status, response.msg  # headers, looked up case-insensitively


def slow_write(port, bucket, key, number):
    """A body of 10 bytes sent one byte every 0.3 s on a connection of its own."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("POST", f"/v1/{bucket}/slow{number}")
        conn.putheader("X-Api-Key", key)
        conn.putheader("Content-Length", "10")
        conn.endheaders()
        for _ in range(10):
            conn.send(b"x")
            time.sleep(0.3)
        return read(conn)
    finally:
        conn.close()


def test_a_storm_is_answered_200_429_or_503_never_500(limited_role, tmp_path):
    role, database_url = limited_role
    alice = Persona("alice")
    bucket = alice.new_bucket()
    Item.objects.bulk_create(
        Item(bucket_id=bucket, key=f"k{n}", value=b"v") for n in range(CLIENTS)
    )
    log = tmp_path / "server.log"
    with served(
        database_url,
        log,
        THISDB_REDIS_PREFIX=RUN_PREFIX,
        THISDB_KEY_WRITES_PER_SECOND="1",
        WEB_WORKERS="1",
        WEB_THREADS="8",  # more requests inside Django than connections: some must wait
        DATABASE_POOL_SIZE=str(ROLE_LIMIT),
        DATABASE_POOL_TIMEOUT="1",
    ) as port:
        statuses: Counter = Counter()
        failures: list[str] = []
        peak = [0]
        done = threading.Event()

        def watch():
            try:
                while not done.wait(0.2):
                    peak[0] = max(peak[0], role_connections(role))
            finally:
                connection.close()  # this thread's own connection

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        threads = [
            threading.Thread(
                daemon=True,
                target=client,
                args=(port, bucket, alice.key, n, n < SLOW_CLIENTS, statuses, failures),
            )
            for n in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        try:
            # Mid-storm, something holds the keys' table for 3 s (a long migration, say):
            # requests keep their pooled connections while they wait, the pool runs dry, and
            # the requests that find no connection within DATABASE_POOL_TIMEOUT get a 503.
            time.sleep(1)
            with psycopg.connect(owner_url()) as blocker:
                blocker.execute("LOCK TABLE api_item IN ACCESS EXCLUSIVE MODE")
                time.sleep(3)
                blocker.rollback()
        finally:
            for thread in threads:
                thread.join(timeout=300)
            done.set()
            watcher.join()

        assert failures == []
        assert set(statuses) <= {200, 429, 503}, statuses
        assert statuses[200] > 0
        assert statuses[503] > 0  # the pool ran dry while the table was held
        assert sum(statuses.values()) == CLIENTS * REQUESTS_EACH
        assert peak[0] <= ROLE_LIMIT

        # After the storm: served at once.
        time.sleep(1)
        started = time.monotonic()
        status, _, body = request(port, "GET", f"/v1/{bucket}", headers={"X-Api-Key": alice.key})
        assert status == 200
        assert time.monotonic() - started < 1.0
        print(f"storm: {dict(statuses)}, peak connections {peak[0]}")
    assert "Traceback" not in log.read_text()
