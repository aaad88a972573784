"""The stack the benchmark runs on: its PostgreSQL database (dropped and created), Redis,
`manage.py`, and the servers it starts and stops, with their processes."""

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import redis
from psycopg import sql
from psycopg.rows import TupleRow

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://root@127.0.0.1:5432/thisdb_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_PREFIX = "thisdb-bench"
VALUE = b"v" * 100  # every seeded value: 100 bytes
ENV = {
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "THISDB_REDIS_PREFIX": REDIS_PREFIX,
    # The hourly limit would refuse a benchmark's traffic: raised out of the way. The write
    # rule stays on (1 per key per second): every write goes to a new key.
    "THISDB_REQUESTS_PER_HOUR": "1000000000",
    "THISDB_MAX_KEYS_PER_BUCKET": "100000000",
    "THISDB_MAX_STORED_BYTES": str(1 << 40),
    # The watch section opens 5,000 streams with one account.
    "THISDB_MAX_WATCHES": "100000",
    "DEBUG": "false",
}


def database_connection(dbname: str | None = None) -> psycopg.Connection[TupleRow]:
    url = urlsplit(DATABASE_URL)
    if dbname:
        url = url._replace(path=f"/{dbname}")
    return psycopg.connect(url.geturl(), autocommit=True)


def one_value(conn: psycopg.Connection[TupleRow], query: str) -> Any:
    """The first column of the query's first row."""
    row = conn.execute(query).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {query}")
    return row[0]


def fresh_database() -> None:
    name = urlsplit(DATABASE_URL).path.lstrip("/")
    with database_connection("postgres") as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def manage(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def fill(
    conn: psycopg.Connection[TupleRow],
    bucket: str,
    count: int,
    prefix: str = "k",
    expired: bool = False,
) -> None:
    """`count` keys <prefix>0000000.. of 100 bytes, in one INSERT ... SELECT."""
    expires = "now() - interval '1 minute'" if expired else "NULL"
    conn.execute(
        "INSERT INTO api_item (bucket_id, key, value, expires_at, updated_at) "
        f"SELECT %s, %s || lpad(i::text, 7, '0'), %s, {expires}, now() "
        "FROM generate_series(0, %s - 1) AS i",
        [bucket, prefix, VALUE, count],
    )


def forget_redis_keys() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    for name in client.scan_iter(match=f"{REDIS_PREFIX}:*", count=1000):
        client.delete(name)
    client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, bytes, str | None]:
    """One request on a new connection: the status, the body and the next page's cursor."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(), response.getheader("X-Next-Cursor")
    finally:
        conn.close()


@contextmanager
def serving(
    app: str, workers: int, threads: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[int, list[int]]]:
    """`make serve` with SERVE_APP=app (and `env` beside the bench's); yields (port, the
    workers' pids)."""
    port = free_port()
    command = [
        "make",
        "-s",
        "serve",
        f"ADDR=127.0.0.1:{port}",
        f"WEB_WORKERS={workers}",
        f"WEB_THREADS={threads}",
        f"SERVE_APP={app}",
    ]
    # make runs granian (its shell exec's into it), granian its workers.
    with running(command, port, log, env or {}, lambda pid: grandchildren(pid)) as pids:
        yield port, pids


@contextmanager
def running(
    command: list[str],
    port: int,
    log: Path,
    env: dict[str, str],
    workers: Callable[[int], list[int]],
) -> Iterator[list[int]]:
    """Runs a server until it answers on `port`; yields workers(its pid)."""
    with open(log, "ab") as output:
        server = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **ENV, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if call(port, "GET", "/v1/x", {})[0]:
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"{command[0]} did not answer; see {log}") from None
                time.sleep(0.2)
        yield workers(server.pid)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=45)  # granian gives its workers 30 s (--workers-kill-timeout)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def children(pid: int) -> list[int]:
    done = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(child) for child in done.stdout.split()]


def grandchildren(pid: int) -> list[int]:
    return [grandchild for child in children(pid) for grandchild in children(child)]
