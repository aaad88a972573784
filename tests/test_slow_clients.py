"""Slow clients against the production web tier (`make serve`): 200 connections that send their
headers a byte every 2 s and 200 that send their bodies so, while a normal client is still
answered within a second. Slow headers are dropped by granian's header timeout; slow bodies are
read on the event loop, never holding a thread or a database connection (thisdb_site.asgi)."""

import select
import socket
import threading
import time

import pytest
from django.db import connection

from tests.conftest import RUN_PREFIX, Persona
from tests.serving import request, served

pytestmark = pytest.mark.django_db(transaction=True)

SLOW_CLIENTS = 200  # of each kind
TRICKLE_EVERY = 2.0  # seconds between two bytes of a slow client
ATTACK_SECONDS = 12  # longer than the header timeout (5 s)


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class Trickle:
    """Slow clients, one byte at a time, all fed by one thread."""

    def __init__(self, port: int, heads: list[bytes], rests: list[bytes]):
        self.sockets = []
        for head, rest in zip(heads, rests, strict=True):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(head)
            self.sockets.append([sock, rest, False])  # socket, bytes still to send, closed
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(TRICKLE_EVERY):
            for entry in self.sockets:
                sock, rest, closed = entry
                if closed or not rest:
                    continue
                try:
                    sock.send(rest[:1])
                    entry[1] = rest[1:]
                except OSError:
                    entry[2] = True

    def closed_by_server(self) -> int:
        """How many of these connections the server has closed (or answered and closed)."""
        count = 0
        for entry in self.sockets:
            sock = entry[0]
            if entry[2]:
                count += 1
                continue
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                try:
                    data = sock.recv(4096, socket.MSG_PEEK)
                except OSError:
                    data = b""
                if not data or data.startswith(b"HTTP/1.1 408"):
                    count += 1
        return count

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)
        for sock, _, _ in self.sockets:
            sock.close()


def test_a_normal_client_is_served_within_a_second_through_400_slow_ones(tmp_path):
    alice = Persona("alice")
    bucket = alice.new_bucket()
    alice.set(bucket, "k", "v")
    key = {"X-Api-Key": alice.key}
    with served(
        database_url(),
        tmp_path / "server.log",
        THISDB_REDIS_PREFIX=RUN_PREFIX,
        THISDB_KEY_WRITES_PER_SECOND="0",
        THISDB_REQUESTS_PER_HOUR="1000000",
        WEB_WORKERS="2",
    ) as port:
        head = f"POST /v1/{bucket}/slow HTTP/1.1\r\nHost: x\r\nX-Api-Key: {alice.key}\r\n"
        slow_headers = Trickle(
            port, [head.encode()] * SLOW_CLIENTS, [b"Content-Length: 1\r\n\r\nx"] * SLOW_CLIENTS
        )
        body_head = (head + "Content-Length: 100\r\n\r\n").encode()
        slow_bodies = Trickle(port, [body_head] * SLOW_CLIENTS, [b"x" * 100] * SLOW_CLIENTS)
        with slow_headers, slow_bodies:
            latencies = []
            started = time.monotonic()
            n = 0
            while time.monotonic() - started < ATTACK_SECONDS:
                sent = time.monotonic()
                status, _, body = request(port, "GET", f"/v1/{bucket}/k", headers=key)
                assert (status, body) == (200, b"v")
                n += 1
                status, _, _ = request(
                    port, "POST", f"/v1/{bucket}/n{n}", body=b"written", headers=key
                )
                assert status == 200
                latencies.append(time.monotonic() - sent)
                time.sleep(0.2)
            dropped_heads = slow_headers.closed_by_server()
            dropped_bodies = slow_bodies.closed_by_server()

        assert latencies and max(latencies) < 1.0, latencies  # a read and a write, each pair
        assert dropped_heads == SLOW_CLIENTS  # the 5 s header timeout
        assert dropped_bodies == 0  # within THISDB_BODY_TIMEOUT (30 s): still being read
        assert not (tmp_path / "server.log").read_text().count("Traceback")
