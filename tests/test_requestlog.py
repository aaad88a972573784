"""Request logs (thisdb_site.requestlog) on the production web tier (`make serve`) and a real
Celery worker: X-Request-Id on every answer, and with THISDB_LOG_FORMAT=json one JSON line per
request and per task run, holding no secret, key name or value."""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from api.tasks import sweep_expired_tokens
from tests.conftest import RUN_PREFIX, Persona
from tests.serving import PROJECT, served
from tests.serving import request as raw_request
from tests.sse import Stream

pytestmark = pytest.mark.django_db(transaction=True)

ITEM_ROUTE = "v1/<str:bucket_id>/<key:key>"
BUCKET_ROUTE = "v1/<str:bucket_id>"
GENERATED = re.compile(r"[0-9a-f]{32}")
CLIENT = "203.0.113.7"  # the address the proxy in front adds to X-Forwarded-For
KEY_NAME = "diary/entry-of-the-secret-garden"
VALUE = b"the-value-nobody-may-log-\x00\xff"


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def platform(tmp_path: Path, **env: str):
    return served(
        database_url(),
        tmp_path / "server.log",
        REDIS_URL=settings.REDIS_URL,
        THISDB_REDIS_PREFIX=RUN_PREFIX,
        WEB_WORKERS="1",
        THISDB_LOG_FORMAT="json",
        THISDB_PROXY_COUNT="1",
        **env,
    )


def json_lines(log: Path) -> list[dict]:
    """The log's JSON lines (make's and migrate's own output, before the server starts, is not
    the platform's log)."""
    lines = log.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def line_of(log: Path, rid: str) -> dict:
    """The request line with this id, waiting for it a little (the front writes its own after
    the answer)."""
    deadline = time.monotonic() + 5
    while True:
        found = [
            entry
            for entry in json_lines(log)
            if entry.get("logger") == "thisdb.requests" and entry["request_id"] == rid
        ]
        if found or time.monotonic() > deadline:
            assert len(found) == 1, (rid, found)
            return found[0]
        time.sleep(0.05)


def request(port: int, method: str, path: str, body: bytes | None = None, headers=None):
    """(status, headers by lowercase name, body)."""
    status, answered, content = raw_request(port, method, path, body, headers)
    return status, {name.lower(): value for name, value in answered.items()}, content


def via_proxy(**headers: str) -> dict[str, str]:
    """As the one proxy in front sends it: what the client said (a forgery), then the address
    the proxy saw, which is the one the log keeps."""
    return {"X-Forwarded-For": f"198.51.100.9, {CLIENT}", **headers}


def test_a_request_line_names_its_route_status_account_and_client(tmp_path):
    alice = Persona("alice")
    bucket = alice.new_bucket()
    key = {"X-Api-Key": alice.key}
    with platform(tmp_path) as port:
        status, headers, _ = request(
            port, "POST", f"/v1/{bucket}/k", b"v", via_proxy(**key, **{"X-Request-Id": "ab.C-1_x"})
        )
        assert status == 200
        assert headers["x-request-id"] == "ab.C-1_x"  # the proxy's id, taken and returned
        written = line_of(tmp_path / "server.log", "ab.C-1_x")

        status, headers, _ = request(port, "GET", f"/v1/{bucket}", headers=via_proxy(**key))
        listed = line_of(tmp_path / "server.log", headers["x-request-id"])

    assert GENERATED.fullmatch(headers["x-request-id"])  # none sent: one made
    assert written["method"] == "POST"
    assert written["route"] == ITEM_ROUTE
    assert written["status"] == 200
    assert written["account"] == alice.user.id
    assert written["client"] == CLIENT  # one proxy: the entry it added, not its own address
    assert 0 < written["duration_ms"] < 10_000
    assert written["level"] == "INFO" and written["time"].startswith("20")
    assert (listed["method"], listed["route"], listed["status"]) == ("GET", BUCKET_ROUTE, 200)


HOSTILE_IDS = ["x" * 65, "a b", "<script>", "id;drop", "é", ""]  # too long, unsafe, empty


def test_a_hostile_request_id_is_replaced(tmp_path):
    with platform(tmp_path) as port:
        for offered in HOSTILE_IDS:
            headers = {"X-Request-Id": offered.encode("utf-8")}
            status, answered, _ = request(port, "GET", "/healthz", headers=headers)
            assert status == 200
            rid = answered["x-request-id"]
            assert GENERATED.fullmatch(rid), offered
            assert line_of(tmp_path / "server.log", rid)["route"] == "healthz"
    text = (tmp_path / "server.log").read_text(errors="replace")
    for offered in filter(None, HOSTILE_IDS):
        assert offered not in text


def test_every_answer_carries_the_id_and_has_its_line(tmp_path):
    """Answers Django's URL resolver, a limit, the front itself, a streamed export and a watch
    stream give: each with the id, each with its line."""
    alice = Persona("alice")
    bucket = alice.new_bucket()
    alice.set(bucket, "k", "v")
    key = {"X-Api-Key": alice.key}
    token = alice.token(bucket, "", "read")
    log = tmp_path / "server.log"
    with platform(tmp_path, THISDB_BODY_TIMEOUT="1", THISDB_AUTH_FAILURES_RATE="1/m") as port:
        answers = {
            "no such page": request(port, "GET", "/no/such/page", headers=via_proxy()),
            "no such key": request(port, "GET", f"/v1/{bucket}/nothing", headers=key),
            "export": request(
                port, "GET", f"/v1/{bucket}?all=true&format=ndjson&values=true", headers=key
            ),
            "long-poll": request(
                port, "GET", f"/v1/{bucket}?watch=true&format=json&wait=0", headers=key
            ),
        }
        wrong = {"X-Api-Key": "tdb_wrong"}
        request(port, "GET", f"/v1/{bucket}/k", headers=wrong)
        answers["too many wrong keys"] = request(port, "GET", f"/v1/{bucket}/k", headers=wrong)
        stream = Stream(port, bucket, token=token)
        stream.close()
        answers["body too slow"] = _slow_body(port)

        expected = {
            "no such page": (404, None),
            "no such key": (404, ITEM_ROUTE),
            "export": (200, BUCKET_ROUTE),
            "long-poll": (200, BUCKET_ROUTE),
            "too many wrong keys": (429, ITEM_ROUTE),
            "body too slow": (408, None),  # the front's own answer: Django never saw it
        }
        for what, (status, route) in expected.items():
            answer_status, headers, _ = answers[what]
            assert answer_status == status, (what, answers[what])
            line = line_of(log, headers["x-request-id"])
            assert (line["status"], line["route"]) == (status, route), what
        assert stream.status == 200
        assert (line_of(log, stream.headers["x-request-id"])["route"]) == BUCKET_ROUTE
    page_line = line_of(log, answers["no such page"][1]["x-request-id"])
    assert page_line["client"] == CLIENT and page_line["account"] is None


def _slow_body(port: int) -> tuple[int, dict, bytes]:
    """A POST whose body never comes whole: the front answers 408 after THISDB_BODY_TIMEOUT."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v1/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += sock.recv(4096)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def test_no_line_holds_a_secret_a_key_name_or_a_value(tmp_path):
    alice = Persona("alice")
    bucket = alice.new_bucket()
    token = alice.token(bucket, "", "read")
    key = {"X-Api-Key": alice.key}
    log = tmp_path / "server.log"
    with platform(tmp_path) as port:
        path = f"/v1/{bucket}/{KEY_NAME}"
        assert request(port, "POST", path, VALUE, key)[0] == 200
        assert request(port, "GET", path, headers=key)[2] == VALUE
        assert request(port, "GET", f"{path}-missing", headers=key)[0] == 404
        assert request(port, "GET", path, headers={"X-Token": token})[0] == 200
        # A watch's token in its query string (an EventSource's way): no line holds it either.
        watch = f"/v1/{bucket}?watch=true&format=json&wait=0&token={token}"
        assert request(port, "GET", watch)[0] == 200
        assert request(port, "GET", path, headers={"X-Api-Key": alice.key + "x"})[0] == 403
        time.sleep(0.5)  # any line written after the answers

    text = log.read_text(errors="replace")
    lines = json_lines(log)
    logged = [line for line in lines if line.get("logger") == "thisdb.requests"]
    assert len([line for line in logged if line["route"] != "healthz"]) == 6  # every request
    for secret in (alice.key, token, KEY_NAME, "secret-garden", "the-value-nobody-may-log"):
        assert secret not in text, secret


def test_a_task_run_has_its_line_from_a_real_worker(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "THISDB_REDIS_PREFIX": RUN_PREFIX,
        "THISDB_LOG_FORMAT": "json",
    }
    log = tmp_path / "worker.log"
    celery = str(Path(sys.executable).with_name("celery"))
    with open(log, "wb") as output:
        worker = subprocess.Popen(
            [celery, "-A", "thisdb_site", "--quiet", "worker", "--pool=solo", "--loglevel=INFO"],
            cwd=PROJECT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        result = sweep_expired_tokens.delay()
        assert result.get(timeout=60) == 0
        deadline = time.monotonic() + 10
        while not (found := _task_lines(log, result.id)) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert len(found) == 1, log.read_text()
    line = found[0]
    assert line["task"] == "api.tasks.sweep_expired_tokens"
    assert line["state"] == "SUCCESS"
    assert 0 <= line["duration_ms"] < 60_000
    # Celery's own lines about the run (received, succeeded) are JSON too.
    about_it = [text for text in log.read_text().splitlines() if result.id in text]
    assert len(about_it) >= 3 and all(text.startswith("{") for text in about_it), about_it


def _task_lines(log: Path, task_id: str) -> list[dict]:
    return [
        entry
        for entry in json_lines(log)
        if entry.get("logger") == "thisdb.tasks" and entry.get("task_id") == task_id
    ]
