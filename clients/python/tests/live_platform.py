"""The ThisDB platform the online tests talk to over HTTP.

Named by the environment (THISDB_TEST_URL, THISDB_TEST_MANAGE, THISDB_TEST_STRICT_URL,
THISDB_TEST_STREAM_URL, THISDB_TEST_OLDER_URL: see the README), or else started here from the
checkout these tests sit in (clients/python/../..): a scratch database of its own on the
PostgreSQL of DATABASE_URL, `manage.py migrate`, and gunicorn twice on free ports, both with
Redis at REDIS_URL under a prefix of the run's (and, started by the first test that asks, granian,
the production front: once as it is, which streams, for the tests of watches; once with
THISDB_BULK=false, a server without exports and imports, for the tests of the client's
fallbacks); all of it removed at the end. Either way the tests reach the platform's database
through its `manage.py shell`, which runs server_side.py; this process needs no Django.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PROJECT = Path(__file__).resolve().parents[3]
SERVER_SIDE = Path(__file__).with_name("server_side.py")
# The Makefile's defaults for the tests: the PostgreSQL and Redis of this machine. Only the
# server and the user of DATABASE_URL are used: the platform gets a database of its own.
DEFAULT_DATABASE_URL = "postgres://root@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Persona:
    """A user of the platform with an API key, made for one test (so no rate-limit counter or
    cache of the server carries over from another)."""

    name: str
    username: str
    key: str


class Platform:
    """The platform's URLs, and its database through server_side.py."""

    def __init__(
        self,
        url: str,
        strict_url: str | None,
        manage: list[str],
        env: Mapping[str, str],
        serve_streams: Callable[[], str] | None = None,
        serve_older: Callable[[], str] | None = None,
    ):
        self.url = url  # the per-key write limit off: tests write a key twice quickly
        self.strict_url = strict_url  # the spec's one write per second per key
        self._serve_streams = serve_streams
        self._stream_url: str | None = None
        self._serve_older = serve_older
        self._older_url: str | None = None
        self._errors = tempfile.TemporaryFile()
        self._side = subprocess.Popen(
            [*manage, "shell", "--no-imports", "-c", SERVER_SIDE.read_text()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            env=dict(env),
            text=True,
        )

    @property
    def stream_url(self) -> str:
        """The platform served by its production front (granian), which streams a watch's
        events as they come (gunicorn's sync workers would hold each stream in a thread):
        started on first use, as only the tests of watches need it."""
        if self._stream_url is None:
            self._stream_url = self._serve_streams() if self._serve_streams else self.url
        return self._stream_url

    @property
    def older_url(self) -> str | None:
        """The platform served as a server without the bulk routes (THISDB_BULK=false), with
        the spec's one write per second per key, for the tests of the client's fallbacks:
        started on first use, as only those need it; None if there is none."""
        if self._older_url is None and self._serve_older is not None:
            self._older_url = self._serve_older()
            self._serve_older = None
        return self._older_url

    def _ask(self, do: str, **arguments: Any) -> Any:
        assert self._side.stdin and self._side.stdout
        self._side.stdin.write(json.dumps({"do": do, **arguments}) + "\n")
        self._side.stdin.flush()
        answer = self._side.stdout.readline()
        if not answer:
            self._side.wait(timeout=10)
            self._errors.seek(0)
            raise RuntimeError(f"server_side.py stopped: {self._errors.read().decode()}")
        return json.loads(answer)

    def close(self) -> None:
        assert self._side.stdin
        self._side.stdin.close()
        self._side.wait(timeout=30)
        self._errors.close()

    # --- what the tests make and read directly ------------------------------------------------

    def persona(self, name: str) -> Persona:
        return Persona(**self._ask("persona", name=name))

    def set_requests_per_hour(self, persona: Persona, count: int) -> None:
        """Set before the server's first request with the key: it keeps quotas for a few
        seconds."""
        self._ask("set_requests_per_hour", username=persona.username, count=count)

    def new_bucket(self, owner: Persona, default_ttl: int | None = None) -> str:
        bucket: str = self._ask("new_bucket", owner=owner.username, default_ttl=default_ttl)
        return bucket

    def buckets(self, owner: Persona) -> dict[str, int]:
        """The user's buckets: id -> default ttl."""
        found: dict[str, int] = self._ask("buckets", owner=owner.username)
        return found

    def bucket(self, bucket: str) -> dict[str, Any] | None:
        """{"owner": username, "default_ttl": seconds}, or None if there is no such bucket."""
        found: dict[str, Any] | None = self._ask("bucket", pk=bucket)
        return found

    def set_usage(self, bucket: str, keys: int, stored_bytes: int) -> None:
        """The counts of keys and bytes that beat keeps (and `bucket list` shows)."""
        self._ask("set_usage", bucket=bucket, keys=keys, stored_bytes=stored_bytes)

    def put_items(
        self,
        bucket: str,
        items: Mapping[str, bytes],
        expires_at: Mapping[str, float | None] | None = None,
    ) -> None:
        """Keys written in one statement, with a Unix time each expires at (else never)."""
        expires_at = expires_at or {}
        rows = [[k, base64.b64encode(v).decode(), expires_at.get(k)] for k, v in items.items()]
        self._ask("put_items", bucket=bucket, items=rows)

    def stored(self, bucket: str) -> dict[str, bytes]:
        """A bucket's keys and values."""
        items = self._ask("items", bucket=bucket)
        return {key: base64.b64decode(value) for key, (value, _) in items.items()}

    def expiries(self, bucket: str) -> dict[str, float | None]:
        """A bucket's keys and the Unix time each expires at (None: never)."""
        return {key: expires for key, (_, expires) in self._ask("items", bucket=bucket).items()}

    def tokens(self, bucket: str) -> list[dict[str, Any]]:
        """The bucket's tokens' rows: prefix, can_read, can_write, expires_at (Unix time)."""
        rows: list[dict[str, Any]] = self._ask("tokens", bucket=bucket)
        return rows

    def forget_redis_keys(self) -> None:
        self._ask("forget_redis_keys")


@contextmanager
def running_platform() -> Iterator[Platform]:
    """The platform the environment names, or one started from the checkout."""
    url = os.environ.get("THISDB_TEST_URL")
    if not url:
        with started_from_checkout() as started:
            yield started
        return
    manage = os.environ.get("THISDB_TEST_MANAGE")
    if not manage:
        raise RuntimeError(
            "THISDB_TEST_URL is set, but not THISDB_TEST_MANAGE: the command that runs that "
            "platform's manage.py (the tests make their users and keys with it)"
        )
    strict, streams, older = (
        os.environ.get("THISDB_TEST_STRICT_URL"),
        os.environ.get("THISDB_TEST_STREAM_URL"),
        os.environ.get("THISDB_TEST_OLDER_URL"),
    )
    named = Platform(
        url,
        strict,
        shlex.split(manage),
        os.environ,
        (lambda: streams) if streams else None,
        (lambda: older) if older else None,
    )
    try:
        yield named
    finally:
        named.close()


def server_python() -> str:
    """The Python that runs the platform: this one if it has the platform's packages (the
    project's `make test`), else the checkout's .venv (made by `make install`)."""
    if importlib.util.find_spec("django") and importlib.util.find_spec("gunicorn"):
        return sys.executable
    python = PROJECT / ".venv" / "bin" / "python"
    if not python.exists():
        raise RuntimeError(
            f"no Python with the platform's packages: run `make install` in {PROJECT}, "
            "or name a running platform with THISDB_TEST_URL (see the README)"
        )
    return str(python)


@contextmanager
def started_from_checkout() -> Iterator[Platform]:
    python = server_python()
    database_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    if urlsplit(database_url).scheme not in ("postgres", "postgresql"):
        raise RuntimeError(f"the tests start the platform on PostgreSQL, not {database_url}")
    prefix = f"thisdb-client-tests-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "REDIS_URL": os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL,
        "THISDB_REDIS_PREFIX": prefix,  # every key the run writes, removed at the end
        "THISDB_AUTH_FAILURES_RATE": "100000/m",  # tests send wrong keys on purpose
    }
    with ExitStack() as stack:
        env["DATABASE_URL"] = stack.enter_context(scratch_database(python, database_url))
        subprocess.run(
            [python, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=PROJECT,
            env=env,
            check=True,
        )
        url = stack.enter_context(gunicorn(python, {**env, "THISDB_KEY_WRITES_PER_SECOND": "0"}))
        strict = stack.enter_context(gunicorn(python, {**env, "THISDB_KEY_WRITES_PER_SECOND": "1"}))

        def serve_streams() -> str:
            return stack.enter_context(
                granian(python, {**env, "THISDB_KEY_WRITES_PER_SECOND": "0"})
            )

        def serve_older() -> str:
            # The operator's switch (THISDB_BULK=false) makes it answer as a server of a
            # version before exports and imports, on the production front (which then streams
            # nothing); the per-key rule on, as such a server has it and a test needs it.
            older = {**env, "THISDB_KEY_WRITES_PER_SECOND": "1", "THISDB_BULK": "false"}
            return stack.enter_context(granian(python, older))

        started = Platform(
            url, strict, [python, str(PROJECT / "manage.py")], env, serve_streams, serve_older
        )
        stack.callback(started.close)
        stack.callback(started.forget_redis_keys)
        yield started


# A statement run on PostgreSQL by the platform's Python (psycopg is one of its packages).
POSTGRES = """
import sys
import psycopg
with psycopg.connect(sys.argv[1], autocommit=True) as connection:
    connection.execute(sys.argv[2])
"""


@contextmanager
def scratch_database(python: str, database_url: str) -> Iterator[str]:
    """A database of the run's own beside DATABASE_URL's (never that one, nor pytest-django's
    test_ database); yields its URL, drops it at the end."""
    name = f"thisdb_client_tests_{os.getpid()}"
    maintenance = urlsplit(database_url)._replace(path="/postgres").geturl()

    def execute(statement: str) -> None:
        subprocess.run([python, "-c", POSTGRES, maintenance, statement], check=True)

    execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # left by a run that was killed
    execute(f"CREATE DATABASE {name}")
    try:
        yield urlsplit(database_url)._replace(path=f"/{name}").geturl()
    finally:
        execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def gunicorn(python: str, env: Mapping[str, str]) -> Iterator[str]:
    """gunicorn serving the platform on a free port; yields its URL."""
    port = free_port()
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(
        [
            python,
            "-m",
            "gunicorn",
            "thisdb_site.wsgi",
            f"--bind=127.0.0.1:{port}",
            "--workers=1",
            "--threads=8",  # gthread: keep-alive connections, concurrent async requests
        ],
        cwd=PROJECT,
        env=dict(env),
        stdout=log,
        stderr=log,
    )
    try:
        _wait_for(port, server, log, "gunicorn")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGINT)  # quick shutdown: no waiting for idle keep-alives
        server.wait(timeout=10)
        log.close()


@contextmanager
def granian(python: str, env: Mapping[str, str]) -> Iterator[str]:
    """granian serving the platform's ASGI application on a free port, as `make serve` does (one
    worker here); yields its URL."""
    port = free_port()
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(
        [
            python,
            "-m",
            "granian",
            "thisdb_site.asgi:application",
            "--interface=asgi",
            "--http=1",
            "--no-ws",
            "--host=127.0.0.1",
            f"--port={port}",
            "--workers=1",
            "--runtime-threads=1",
            "--log-level=warning",
        ],
        cwd=PROJECT,
        env={**env, "THISDB_WEB_THREADS": "8"},  # watches and the writes of the tests at once
        stdout=log,
        stderr=log,
    )
    try:
        _wait_for(port, server, log, "granian")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()  # open streams may keep it waiting
            server.wait(timeout=10)
        log.close()


def _wait_for(port: int, server: subprocess.Popen, log: Any, name: str) -> None:
    """Until the server listens on the port; RuntimeError with its log if it stopped or took
    more than 30 s."""
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"{name} did not start: {log.read().decode()}") from None
            time.sleep(0.1)
