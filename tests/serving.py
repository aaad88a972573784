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
# The variables that point the platform at its engines: the embedded default's tests start it
# without them.
PLATFORM_SETTINGS = ("DATABASE_URL", "REDIS_URL", "REDIS_CLUSTER", "CELERY_BROKER_URL")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(database_url: str, log: Path, **settings: str):
    """`make serve` on a free port; yields the port. Extra keyword arguments are environment
    variables (THISDB_..., DATABASE_POOL_SIZE) or make variables (WEB_WORKERS, WEB_THREADS,
    SERVE_APP: another ASGI application than the platform's)."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, **settings}
    make_vars = [
        f"{k}={v}" for k, v in settings.items() if k.startswith("WEB_") or k == "SERVE_APP"
    ]
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


def worker_pids(port: int) -> list[int]:
    """The granian workers serving `port`: the processes of its command line whose parent is
    one too (the main process)."""
    mark = f"--port\x00{port}\x00".encode()
    ours = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and mark in (entry / "cmdline").read_bytes():
                ours.add(int(entry.name))
        except OSError:
            continue  # gone meanwhile
    return sorted(pid for pid in ours if _parent(pid) in ours)


def _parent(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    return 0


def rss_kib(pid: int) -> int:
    """A process's resident memory, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")
