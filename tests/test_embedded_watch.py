"""Watching on the embedded default as `make run` serves it: SQLite, no Redis, the production
front (granian, one process), so streams stay open and the process's hub hears each write
directly (api.notify)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serving import PLATFORM_SETTINGS, free_port, wait_until_answering

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("embedded-watch")
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in PLATFORM_SETTINGS and not name.startswith("THISDB_")
    }
    env["DATABASE_URL"] = f"sqlite:///{folder}/db.sqlite3"
    env["THISDB_WATCH_POLL_SECONDS"] = "3600"  # so only this process's own notices deliver
    env["THISDB_KEY_WRITES_PER_SECOND"] = "0"  # a key written twice within the test
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=PROJECT, env=env, check=True
    )
    made = subprocess.run(
        [sys.executable, "manage.py", "createapikey", "watcher", "--create-user"],
        cwd=PROJECT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    key = made.stdout.strip().splitlines()[-1]
    port = free_port()
    with open(folder / "server.log", "wb") as log:
        server = subprocess.Popen(
            ["make", "-s", "serve", f"ADDR=127.0.0.1:{port}", "WEB_WORKERS=1"],
            cwd=PROJECT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_answering(port, timeout=60)
        yield port, key
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # granian waits up to 30 s for a worker's streams
            os.killpg(server.pid, 9)
            server.wait(timeout=10)


def call(port: int, key: str, method: str, path: str, body: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nX-Api-Key: {key}\r\n"
        head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        sock.sendall(head.encode() + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    assert status == 200, answer
    return answer.split(b"\r\n\r\n", 1)[1]


def test_a_stream_hears_every_write_of_the_process_in_order(embedded):
    port, key = embedded
    bucket = call(port, key, "POST", "/v1/").decode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as stream:
        request = f"GET /v1/{bucket}?watch=true&prefix=k HTTP/1.1\r\nHost: x\r\nX-Api-Key: {key}"
        stream.sendall(request.encode() + b"\r\n\r\n")
        received = stream.recv(65536)
        assert b"200 OK" in received and b"id: 0\n" in received
        call(port, key, "POST", f"/v1/{bucket}/k1", b"one")
        call(port, key, "POST", f"/v1/{bucket}/other", b"not watched")
        transaction = {
            "ops": [{"op": "increment", "key": "k2", "by": 3}, {"op": "delete", "key": "k1"}]
        }
        call(port, key, "POST", f"/v1/{bucket}", json.dumps(transaction).encode())
        while received.count(b"event: ") < 3:
            received += stream.recv(65536)  # the poll is an hour away: these came from notices
    text = received.decode()
    assert 'id: 1\nevent: put\ndata: {"key": "k1", "value": "one"' in text
    assert '"other"' not in text  # outside the prefix
    assert 'id: 3\nevent: put\ndata: {"key": "k2", "value": "3"' in text
    assert 'id: 4\nevent: delete\ndata: {"key": "k1"' in text
