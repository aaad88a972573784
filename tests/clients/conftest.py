"""The Python client and the `thisdb` tool against the platform over real HTTP: gunicorn serving
the test database, with Redis for rate limits, started once per test session.

Tests here are transactional (their rows are committed, so the server process sees them; the
tables are emptied after each test). Each test makes its own user and API key (Persona), so
rate-limit counters and caches of the server never carry over from one test to the next.
"""

import http.server
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import thisdb
from django.db import connection
from thisdb.cli.main import main

from tests.conftest import RUN_PREFIX, Persona

PROJECT = Path(__file__).resolve().parents[2]
THISDB = str(Path(sys.executable).with_name("thisdb"))  # the console script


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_gunicorn(writes_per_second: int) -> Iterator[str]:
    port = free_port()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "THISDB_KEY_WRITES_PER_SECOND": str(writes_per_second),
        "THISDB_REDIS_PREFIX": RUN_PREFIX,  # removed with the rest of the run's Redis keys
        "THISDB_AUTH_FAILURES_RATE": "100000/m",  # tests send wrong keys on purpose
    }
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "thisdb_site.wsgi",
            f"--bind=127.0.0.1:{port}",
            "--workers=1",
            "--threads=8",  # gthread: keep-alive connections, concurrent async requests
        ],
        cwd=PROJECT,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"gunicorn did not start: {log.read().decode()}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGINT)  # quick shutdown: no waiting for idle keep-alives
        server.wait(timeout=10)
        log.close()


@pytest.fixture(scope="session")
def server(django_db_setup, django_db_blocker) -> Iterator[str]:
    """The platform's URL, with the per-key write limit off (tests write a key twice quickly)."""
    yield from _start_gunicorn(writes_per_second=0)


@pytest.fixture(scope="session")
def strict_server(django_db_setup, django_db_blocker) -> Iterator[str]:
    """The platform's URL with the spec's one write per second per key."""
    yield from _start_gunicorn(writes_per_second=1)


@pytest.fixture
def carol(transactional_db) -> Persona:
    return Persona("carol")


@pytest.fixture
def db_client(server, carol) -> Iterator[thisdb.Client]:
    with thisdb.Client(carol.key, base_url=server) as client:
        yield client


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh HOME and XDG folders (profile file, shell history), and no THISDB_* settings."""
    for name in ("THISDB_URL", "THISDB_API_KEY", "THISDB_TOKEN", "THISDB_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path


@dataclass
class Result:
    """What a run of the `thisdb` tool gave."""

    status: int
    out: bytes
    err: bytes

    @property
    def text(self) -> str:
        return self.out.decode()

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()


def run_main(monkeypatch, args: list[str], stdin: bytes = b"") -> Result:
    """The tool's main() in this process, with stdin, stdout and stderr swapped for buffers."""
    out, err = io.BytesIO(), io.BytesIO()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
        patch.setattr(sys, "stdout", io.TextIOWrapper(out, encoding="utf-8", write_through=True))
        patch.setattr(sys, "stderr", io.TextIOWrapper(err, encoding="utf-8", write_through=True))
        status = main(args)
        sys.stdout.flush()
        sys.stderr.flush()
        return Result(status, out.getvalue(), err.getvalue())


def script(*args: str, stdin: bytes = b"", env: dict | None = None) -> Result:
    """The installed `thisdb` in its own process."""
    done = subprocess.run(
        [THISDB, *args], input=stdin, capture_output=True, env=env or os.environ, timeout=60
    )
    return Result(done.returncode, done.stdout, done.stderr)


@contextmanager
def answering(
    answers: list[tuple[int, dict[str, str], bytes]],
    seen: list[tuple[str, str]] | None = None,
    headers_seen: list[str] | None = None,
) -> Iterator[str]:
    """A stand-in HTTP server giving these answers in turn, whatever the request (a proxy in
    front of the platform, or a server of another version); yields its URL. Each request's
    method and path are added to `seen`, its X-Api-Key or X-Token to `headers_seen`."""

    class Answers(http.server.BaseHTTPRequestHandler):
        def answer(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if seen is not None:
                seen.append((self.command, self.path))
            if headers_seen is not None:
                headers_seen.append(self.headers.get("X-Api-Key") or self.headers.get("X-Token"))
            status, headers, body = answers.pop(0)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_DELETE = answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
