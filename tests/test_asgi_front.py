"""thisdb_site.asgi.BufferedWSGI, the front of the production web tier: whole bodies first with
a deadline, then the WSGI application in a bounded pool of threads, then the whole answer."""

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from django.conf import settings
from django.db import connection

from tests.serving import request, served
from thisdb_site.front import BufferedWSGI, wsgi_environ

SCOPE = {
    "type": "http",
    "method": "POST",
    "path": "/v1/x/k",
    "raw_path": b"/v1/x/k",
    "query_string": b"ttl=5",
    "headers": [
        (b"x-api-key", b"secret"),
        (b"content-type", b"text/plain"),
        (b"transfer-encoding", b"chunked"),
    ],
    "client": ("203.0.113.7", 4711),
    "server": ("127.0.0.1", 8000),
    "scheme": "http",
    "http_version": "1.1",
}


class Recorder:
    """A WSGI application that notes what it got and how many ran at once."""

    def __init__(self, hold: float = 0.0):
        self.environs, self.bodies = [], []
        self.running = self.most = 0
        self.hold = hold
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.environs.append(environ)
        self.bodies.append(environ["wsgi.input"].read())
        time.sleep(self.hold)
        with self.lock:
            self.running -= 1
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-Thing", "1")])
        return [b"o", b"k"]


def chunks(*parts: bytes, then_wait: bool = False):
    """A receive() giving these body chunks, then (optionally) nothing ever again."""
    queue = [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1 or then_wait}
        for i, p in enumerate(parts)
    ]

    async def receive():
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    return receive


def collector():
    sent = []

    async def send(message):
        sent.append(message)

    return sent, send


def front(app, **overrides):
    options = {"max_body": 100, "body_timeout": 0.3, "threads": 2, **overrides}
    return BufferedWSGI(app, **options)


def test_the_application_gets_the_whole_body_and_its_answer_goes_out_whole():
    app = Recorder()
    sent, send = collector()
    asyncio.run(front(app)(SCOPE, chunks(b"ab", b"cd", b"ef"), send))
    assert app.bodies == [b"abcdef"]
    assert sent[0]["status"] == 201
    assert (b"x-thing", b"1") in sent[0]["headers"]
    assert sent[1]["body"] == b"ok"


def test_a_request_that_announces_no_body_is_served_without_reading_one():
    app = Recorder()
    sent, send = collector()

    async def receive():
        raise AssertionError("no body was announced: nothing to receive")

    scope = {**SCOPE, "method": "GET", "headers": [(b"x-api-key", b"secret")]}
    asyncio.run(front(app)(scope, receive, send))
    assert app.bodies == [b""]
    assert app.environs[0]["CONTENT_LENGTH"] == "0"
    assert sent[0]["status"] == 201


def test_the_environ_is_what_a_wsgi_server_would_build():
    environ = wsgi_environ(
        {**SCOPE, "path": "/v1/x/a\u00e9", "raw_path": b"/v1/x/a%C3%A9%2F%FF"}, b"abc", True
    )
    assert environ["PATH_INFO"] == "/v1/x/a\xc3\xa9/\xff"  # raw bytes as Latin-1 (PEP 3333)
    assert environ["QUERY_STRING"] == "ttl=5"
    assert environ["HTTP_X_API_KEY"] == "secret"
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "3"  # a chunked body, now whole
    assert environ["REMOTE_ADDR"] == "203.0.113.7"
    assert environ["SERVER_PORT"] == "8000"


def test_a_body_that_does_not_arrive_in_time_is_408_and_never_reaches_the_application():
    app = Recorder()
    sent, send = collector()
    asyncio.run(front(app)(SCOPE, chunks(b"ab", then_wait=True), send))
    assert app.bodies == []
    assert sent[0]["status"] == 408
    assert b"did not arrive in time" in sent[1]["body"]


def test_a_body_over_the_limit_is_passed_on_cut_for_the_application_to_refuse():
    app = Recorder()
    asyncio.run(front(app, max_body=4)(SCOPE, chunks(b"abc", b"def", b"ghi"), collector()[1]))
    assert app.bodies == [b"abcdef"]  # more than 4 bytes: enough to know it is too large
    assert "CONTENT_LENGTH" not in app.environs[0]  # not whole: no length is made up for it


def test_a_body_that_never_ends_is_not_served_and_is_answered_400():
    """granian says "disconnect" both for a client that left and for a body it cannot read to
    its end (malformed, or cut short): the answer reaches the client if it is still there."""
    app = Recorder()
    sent, send = collector()
    messages = [
        {"type": "http.request", "body": b"a", "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive():
        return messages.pop(0)

    asyncio.run(front(app)(SCOPE, receive, send))
    assert app.bodies == []
    assert sent[0]["status"] == 400
    assert (b"connection", b"close") in sent[0]["headers"]
    assert sent[1]["body"].startswith(b"the request body is malformed or ended early")


def test_at_most_threads_requests_run_at_once():
    app = Recorder(hold=0.05)

    async def many():
        wrapped = front(app, threads=3)
        await asyncio.gather(*(wrapped(SCOPE, chunks(b"x"), collector()[1]) for _ in range(12)))

    asyncio.run(many())
    assert app.most == 3
    assert len(app.bodies) == 12


def test_lifespan_is_answered():
    sent, send = collector()
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive():
        return messages.pop(0)

    asyncio.run(front(Recorder())({"type": "lifespan"}, receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_the_production_application_freezes_what_it_loads():
    """thisdb_site.asgi loads the URLconf and its views, then freezes every object loaded so far,
    which the garbage collector then never scans (a full collection of them took 60 ms)."""
    script = (
        "import gc, sys; import thisdb_site.asgi; "
        "print(gc.get_freeze_count(), 'api.views' in sys.modules, 'accounts.views' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "thisdb_site.settings"},
    )
    frozen, api_views, page_views = result.stdout.split()
    assert int(frozen) > 50_000, result.stderr
    assert (api_views, page_views) == ("True", "True")


def exchange(port: int, head: bytes, body: bytes, *, half_close: bool) -> bytes:
    """Send a raw request (then, if asked, shut our side for writing) and read the answer until
    the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


BROKEN_BODIES = {
    "a chunk size that is not hex": (
        b"Transfer-Encoding: chunked",
        b"zz\r\nabc\r\n0\r\n\r\n",
        False,
    ),
    "5 of 10 bytes, then a half-close": (b"Content-Length: 10", b"abcde", True),
    "a chunk cut short, then a half-close": (b"Transfer-Encoding: chunked", b"5\r\nab", True),
}


@pytest.mark.django_db(transaction=True)
def test_make_serve_answers_a_malformed_or_cut_short_body_400_never_500(tmp_path):
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    with served(url, tmp_path / "server.log", WEB_WORKERS="1") as port:
        for path in (b"/v1/zqjvK4C908tf3mAHlcOi/k", b"/accounts/login/"):
            for what, (header, body, half_close) in BROKEN_BODIES.items():
                head = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n"
                answer = exchange(port, head, body, half_close=half_close)
                status_line, _, rest = answer.partition(b"\r\n")
                assert status_line == b"HTTP/1.1 400 Bad Request", (path, what, answer)
                assert b"content-type: text/plain; charset=utf-8" in rest.lower()
                assert rest.endswith(
                    b"the request body is malformed or ended early: send exactly "
                    b"Content-Length bytes, or a valid chunked body"
                ), (what, answer)
        # A client that leaves for good mid-body is no answer's business: the server goes on.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /v1/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        assert request(port, "GET", "/healthz")[0] == 200
    assert "Traceback" not in (tmp_path / "server.log").read_text()
