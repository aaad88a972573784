"""The embedded default: `manage.py runserver` on SQLite without Redis serves the v1 API (POST
/v1/, GET/POST/PATCH /v1/<bucket>/<key>, GET /v1/<bucket>) with its in-process fallbacks,
the per-key write limit included (on by default there)."""

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.serving import PLATFORM_SETTINGS, free_port

MANAGE_PY = Path(__file__).parents[1] / "manage.py"
KEY_RE = re.compile(r"tdb_[0-9A-Za-z]{46}")
START_TIMEOUT_SECONDS = 20


class Server:
    def __init__(self, base_url: str, key: str, database: Path):
        self.base_url = base_url
        self.key = key
        self.database = database  # the SQLite file it serves

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/octet-stream",
    ):
        """(status, headers, body) of one request with the API key."""
        request = urllib.request.Request(
            self.base_url + path,
            data=body,
            method=method,
            headers={"X-Api-Key": self.key, "Content-Type": content_type},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def new_bucket(self) -> str:
        status, _, body = self.call("POST", "/v1/", b"")
        assert status == 200, body
        return body.decode()


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except urllib.error.HTTPError:
        return True  # 403 without a key: it answered
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("embedded")
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in PLATFORM_SETTINGS and not name.startswith("THISDB_")
    }
    # Still SQLite, as the embedded default, but never the project's own db.sqlite3.
    env["DATABASE_URL"] = f"sqlite:///{folder}/db.sqlite3"

    def manage(*args):
        done = subprocess.run(
            [sys.executable, str(MANAGE_PY), *args],
            env=env,
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    manage("migrate", "--noinput")
    key = manage("createapikey", "embedded", "--create-user").strip().splitlines()[-1]
    assert KEY_RE.fullmatch(key), key

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with open(folder / "server.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(MANAGE_PY), "runserver", f"127.0.0.1:{port}", "--noreload"],
            env=env,
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_SECONDS
            while not answers(f"{base_url}/v1/"):
                assert process.poll() is None, (folder / "server.log").read_text()
                assert time.monotonic() < deadline, "runserver did not answer within 20 s"
                time.sleep(0.2)
            yield Server(base_url, key, folder / "db.sqlite3")
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_it_creates_a_bucket(server):
    status, headers, body = server.call("POST", "/v1/", b"")
    assert status == 200
    assert re.fullmatch(rb"[A-Za-z0-9]{20}", body), body
    assert headers["Content-Type"] == "text/plain; charset=utf-8"


def test_a_binary_value_round_trips_byte_for_byte(server):
    bucket = server.new_bucket()
    value = bytes(range(256)) * 4 + b"\r\n\x00end"
    status, _, body = server.call("POST", f"/v1/{bucket}/blob", value)
    assert (status, body) == (200, b"OK")

    status, _, body = server.call("GET", f"/v1/{bucket}/blob")
    assert status == 200
    assert body == value


def test_increments_add_up(server):
    bucket = server.new_bucket()
    status, _, body = server.call("PATCH", f"/v1/{bucket}/counter", b"+1")
    assert (status, body) == (200, b"1")
    time.sleep(1.1)  # one write per second per key
    status, _, body = server.call("PATCH", f"/v1/{bucket}/counter", b"+2")
    assert (status, body) == (200, b"3")
    assert server.call("GET", f"/v1/{bucket}/counter")[2] == b"3"


def test_it_lists_a_bucket_in_key_order(server):
    bucket = server.new_bucket()
    for key in ("b", "a", "c/1"):
        assert server.call("POST", f"/v1/{bucket}/{key}", key.encode())[0] == 200
    status, _, body = server.call("GET", f"/v1/{bucket}")
    assert status == 200
    assert body == b"a\nb\nc/1"
    assert server.call("GET", f"/v1/{bucket}?values=true&prefix=c")[2] == b"c/1\tc/1"


def test_a_second_immediate_write_to_a_key_is_429_without_redis(server):
    bucket = server.new_bucket()
    assert server.call("POST", f"/v1/{bucket}/hot", b"first")[0] == 200
    status, headers, _ = server.call("POST", f"/v1/{bucket}/hot", b"second")
    assert status == 429
    assert headers["Retry-After"] == "1"
    assert server.call("GET", f"/v1/{bucket}/hot")[2] == b"first"
    # Another key is not held back.
    assert server.call("POST", f"/v1/{bucket}/cold", b"x")[0] == 200


def test_an_immediate_second_increment_is_429_too(server):
    bucket = server.new_bucket()
    assert server.call("PATCH", f"/v1/{bucket}/n", b"+1")[0] == 200
    assert server.call("PATCH", f"/v1/{bucket}/n", b"+1")[0] == 429
    assert server.call("GET", f"/v1/{bucket}/n")[2] == b"1"


def test_a_wrong_key_is_403(server):
    other = Server(server.base_url, "tdb_" + "A" * 46, server.database)
    status, _, body = other.call("POST", "/v1/", b"")
    assert status == 403
    assert body.startswith(b"invalid API key")


def test_a_listing_with_values_says_how_long_each_key_has_left(server):
    bucket = server.new_bucket()
    assert server.call("POST", f"/v1/{bucket}/hour?ttl=3600", b"1")[0] == 200
    assert server.call("POST", f"/v1/{bucket}/never?ttl=0", b"2")[0] == 200
    status, _, body = server.call("GET", f"/v1/{bucket}?values=true&format=json")
    ttls = {item["key"]: item["ttl"] for item in json.loads(body)["items"]}
    assert 3590 <= ttls["hour"] <= 3600 and ttls["never"] == 0


def test_a_watch_without_the_front_answers_what_changed_within_wait_then_ends(server):
    """runserver has no front to hold a stream: a watch is answered with the changes that come
    within `wait` seconds (read from the SQLite history), then ends, for its client to open it
    again from its last id; a long-poll the same, in JSON."""
    bucket = server.new_bucket()
    # A first watch: from now on the bucket's changes are recorded, from position 0.
    status, _, body = server.call("GET", f"/v1/{bucket}?watch=true&format=json&wait=0")
    assert status == 200 and json.loads(body) == {"events": [], "next": "0"}
    assert server.call("POST", f"/v1/{bucket}/a", b"1")[0] == 200
    assert server.call("PATCH", f"/v1/{bucket}/n", b"+5")[0] == 200
    time.sleep(1.1)  # one write a second per key
    assert server.call("DELETE", f"/v1/{bucket}/a")[0] == 200
    status, headers, body = server.call("GET", f"/v1/{bucket}?watch=true&since=0&wait=1")
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    events = [block for block in body.decode().split("\n\n") if "event: " in block]
    assert [e.split("\n")[:2] for e in events] == [
        ["id: 1", "event: put"],
        ["id: 2", "event: put"],
        ["id: 3", "event: delete"],
    ]
    assert '"key": "n", "value": "5"' in events[1] and '"reason": "deleted"' in events[2]
    status, _, body = server.call("GET", f"/v1/{bucket}?watch=true&format=json&since=2&wait=1")
    answer = json.loads(body)
    assert status == 200 and answer["next"] == "3"
    assert [(e["id"], e["type"], e["key"]) for e in answer["events"]] == [("3", "delete", "a")]
    status, _, body = server.call("GET", f"/v1/{bucket}?watch=true&format=json&since=3&wait=1")
    assert json.loads(body) == {"events": [], "next": "3"}  # after wait, nothing new


def test_an_export_reads_one_snapshot_while_writes_go_on(server):
    """On SQLite too (write-ahead logging): a write during an export is served at once and does
    not show in it."""
    bucket = server.new_bucket()
    # 5,000 keys of 2 KB at once (as if set one by one): more than the sockets' buffers take,
    # so the export is still reading while the write happens.
    with sqlite3.connect(server.database) as db:
        db.executemany(
            "INSERT INTO api_item (bucket_id, key, value, expires_at, updated_at, version) "
            "VALUES (?, ?, ?, NULL, '2026-01-01 00:00:00', ?)",
            [(bucket, f"k{n:05d}", b"v" * 2000, 10**9 + n) for n in range(5000)],
        )
    url = f"{server.base_url}/v1/{bucket}?format=ndjson&values=true&all=true"
    request = urllib.request.Request(url, headers={"X-Api-Key": server.key})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["X-Thisdb-Export-Keys"] == "5000"
        first = response.readline()
        started = time.monotonic()
        assert server.call("POST", f"/v1/{bucket}/zzz", b"new")[0] == 200
        assert time.monotonic() - started < 2
        rest = response.read()
    keys = [json.loads(line)["key"] for line in (first + rest).splitlines()]
    assert keys == [f"k{n:05d}" for n in range(5000)]


def test_an_import_writes_its_lines_up_to_a_bad_one(server):
    bucket = server.new_bucket()
    lines = [
        {"key": "text", "value": "héllo", "ttl": 0},
        {"key": "bin", "value": "AP8=", "encoding": "base64", "ttl": 0},
        {"key": "line\nbreak", "value": "v", "ttl": 600},
        {"key": "text", "value": "later line wins", "ttl": 0},
    ]
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    status, _, answer = server.call(
        "POST", f"/v1/{bucket}?format=json", body + b"oops\n", "application/x-ndjson"
    )
    assert status == 400
    assert json.loads(answer)["line"] == 5 and json.loads(answer)["imported"] == 4
    status, _, listing = server.call("GET", f"/v1/{bucket}?format=json&values=true")
    items = {item["key"]: item for item in json.loads(listing)["items"]}
    assert sorted(items) == ["bin", "line\nbreak", "text"]
    assert items["text"]["value"] == "later line wins"
    assert (items["bin"]["value"], items["bin"]["encoding"]) == ("AP8=", "base64")
    assert 590 <= items["line\nbreak"]["ttl"] <= 600
    # Workers KV's array, into the same keys: each gets a new version.
    kv = [{"key": "bin", "value": "/w==", "base64": True}, {"key": "new", "value": "n"}]
    status, _, answer = server.call(
        "POST", f"/v1/{bucket}", json.dumps(kv).encode(), "application/json"
    )
    assert (status, answer) == (200, b"2")
    status, _, listing = server.call("GET", f"/v1/{bucket}?format=json&values=true")
    after = {item["key"]: item for item in json.loads(listing)["items"]}
    assert after["bin"]["value"] == "/w==" and after["new"]["value"] == "n"
    assert int(after["bin"]["version"]) > int(items["bin"]["version"])
