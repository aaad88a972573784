"""The production web tier (`make serve`: granian on thisdb_site.asgi) as the hardening tests
start it, on a database and with settings of their choosing."""

import http.client
import os
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(database_url: str, log: Path, **settings: str):
    """`make serve` on a free port; yields the port. Extra keyword arguments are environment
    variables (THISDB_..., DATABASE_POOL_SIZE) or make variables (WEB_WORKERS, WEB_THREADS)."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, **settings}
    make_vars = [f"{k}={v}" for k, v in settings.items() if k.startswith("WEB_")]
    with open(log, "ab") as output:
        server = subprocess.Popen(
            ["make", "-s", "serve", f"ADDR=127.0.0.1:{port}", *make_vars],
            cwd=PROJECT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # make, granian and its workers stop together
        )
    try:
        wait_until_answering(port, timeout=60)
        yield port
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait(timeout=10)


def wait_until_answering(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, _, _ = request(port, "GET", "/healthz", timeout=2)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the server on port {port} did not answer within {timeout} s")


def request(
    port: int, method: str, path: str, body: bytes | None = None, headers=None, timeout: float = 10
):
    """(status, headers, body) of one request on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()
