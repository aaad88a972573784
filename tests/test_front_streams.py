"""The front's bulk transfers (thisdb_site.front, thisdb_site.streams), driven as granian drives
it: a streamed answer goes out chunk by chunk with backpressure and stops when the client
leaves; an import's body reaches Django as it arrives; bulk requests run in threads of their
own. (Through the real server: tests/test_bulk_serving.py.)"""

import asyncio
import json
import threading

import pytest
from django.urls import reverse

from thisdb_site.front import BufferedWSGI, bulk_kind
from thisdb_site.streams import BodyBroken, BodyTimeout

EXPORT_SCOPE = {
    "type": "http",
    "method": "GET",
    "path": "/v1/b",
    "raw_path": b"/v1/b",
    "query_string": b"format=ndjson&values=true&all=true",
    "headers": [(b"x-api-key", b"secret")],
    "client": ("203.0.113.7", 4711),
    "server": ("127.0.0.1", 8000),
    "scheme": "http",
    "http_version": "1.1",
}


def upload_scope(content_type: bytes = b"application/x-ndjson", path: str = "/v1/b") -> dict:
    headers = [(b"content-type", content_type), (b"transfer-encoding", b"chunked")]
    return {
        **EXPORT_SCOPE,
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
    }


def front(app, **overrides) -> BufferedWSGI:
    options = {"max_body": 100, "body_timeout": 0.3, "threads": 1, "bulk_threads": 1}
    return BufferedWSGI(app, **{**options, **overrides})


class Streaming:
    """What Django's StreamingHttpResponse is to a WSGI server: iterable, closable, streaming."""

    streaming = True

    def __init__(self, chunks):
        self.chunks, self.made, self.closed = chunks, [], False

    def __iter__(self):
        for chunk in self.chunks:
            self.made.append(chunk)
            yield chunk

    def close(self):
        self.closed = True


def exporting(result: Streaming):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/x-ndjson")])
        return result

    return app


def test_a_streamed_answer_goes_out_chunk_by_chunk_each_taken_before_the_next_is_made():
    result = Streaming([b"a\n", b"b\n", b"c\n"])
    sent, made_when_sent = [], []

    async def send(message):
        made_when_sent.append(len(result.made))
        await asyncio.sleep(0.01)  # the server takes its time: the thread waits for it
        sent.append(message)

    async def receive():
        await asyncio.sleep(3600)

    asyncio.run(front(exporting(result))(EXPORT_SCOPE, receive, send))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert [m.get("body") for m in sent[1:]] == [b"a\n", b"b\n", b"c\n", b""]
    assert [m.get("more_body") for m in sent[1:]] == [True, True, True, False]
    assert made_when_sent == [0, 1, 2, 3, 3]  # the head before any line; one chunk at a time
    assert result.closed


def test_a_client_that_leaves_stops_the_export_and_its_result_is_closed():
    left = threading.Event()

    def lines():
        for i in range(1000):
            if i == 3:
                left.wait(5)  # the client goes away while the thread makes chunk 3
            yield b"line %d\n" % i

    result = Streaming(lines())
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        await asyncio.sleep(0.05)
        left.set()
        return {"type": "http.disconnect"}

    asyncio.run(front(exporting(result))(EXPORT_SCOPE, receive, send))
    assert result.closed
    assert len(result.made) <= 5  # stopped at once, not after 1000 lines
    assert not any(m.get("more_body") is False for m in sent)  # no end: the client sees a cut


def test_a_client_that_reads_nothing_for_the_timeout_is_dropped():
    result = Streaming(b"x\n" for _ in range(1000))

    async def send(message):
        if message["type"] == "http.response.body":
            await asyncio.sleep(3600)  # the client's window stays shut

    async def receive():
        await asyncio.sleep(3600)

    asyncio.run(front(exporting(result), body_timeout=0.2)(EXPORT_SCOPE, receive, send))
    assert result.closed and len(result.made) == 1


def test_an_answer_that_fails_midway_is_cut_short_not_ended(caplog):
    def lines():
        yield b"a\n"
        raise RuntimeError("the database went away")

    result = Streaming(lines())
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        await asyncio.sleep(3600)

    asyncio.run(front(exporting(result))(EXPORT_SCOPE, receive, send))
    assert [m.get("body") for m in sent[1:]] == [b"a\n"]  # no final message: the body has no end
    assert result.closed
    assert "a streamed answer failed" in caplog.text


def body_chunks(*parts: bytes, then=None):
    """receive() giving these chunks (the last with more_body=False unless `then` follows:
    "stall" waits forever, "leave" is a disconnect)."""
    messages = [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1 or then is not None}
        for i, p in enumerate(parts)
    ]
    if then == "leave":
        messages.append({"type": "http.disconnect"})

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    return receive


class Reader:
    """A WSGI application that reads its body line by line, as the import does."""

    def __init__(self):
        self.lines, self.environ, self.error = [], None, None

    def __call__(self, environ, start_response):
        self.environ = environ
        try:
            for line in environ["wsgi.input"]:
                self.lines.append(line)
        except OSError as error:
            self.error = error
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [str(error).encode()]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"imported": len(self.lines)}).encode()]


def collector():
    sent = []

    async def send(message):
        sent.append(message)

    return sent, send


def test_an_ndjson_body_reaches_django_as_it_arrives_with_no_length_made_up():
    app = Reader()
    sent, send = collector()
    parts = [b'{"key": "a"}\n{"ke', b'y": "b"}\n', b"", b'{"key": "c"}\n']
    asyncio.run(front(app)(upload_scope(), body_chunks(*parts), send))
    assert app.lines == [b'{"key": "a"}\n', b'{"key": "b"}\n', b'{"key": "c"}\n']
    assert app.environ["wsgi.input_terminated"] is True
    assert "CONTENT_LENGTH" not in app.environ
    assert app.environ["thisdb.streamed_body"] is True
    assert sent[0]["status"] == 200


def test_django_starts_before_the_body_has_arrived():
    started = threading.Event()

    def app(environ, start_response):
        started.set()
        data = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [data]

    async def receive():
        if not hasattr(receive, "sent"):
            receive.sent = True
            return {"type": "http.request", "body": b"first\n", "more_body": True}
        # The rest is sent only once Django runs: a front that waited for it would never start.
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        return {"type": "http.request", "body": b"second\n", "more_body": False}

    sent, send = collector()
    asyncio.run(front(app)(upload_scope(), receive, send))
    assert sent[1]["body"] == b"first\nsecond\n"


def test_a_json_array_is_streamed_and_a_json_object_is_read_whole():
    array, obj = Reader(), Reader()
    scope = upload_scope(b"application/json; charset=utf-8")
    asyncio.run(front(array)(scope, body_chunks(b"  \n", b' [{"key": "a"}]'), collector()[1]))
    assert array.environ["thisdb.streamed_body"] is True
    assert b"".join(array.lines) == b'  \n [{"key": "a"}]'  # the peeked bytes come first
    asyncio.run(front(obj)(scope, body_chunks(b"\n", b'{"ops": []}'), collector()[1]))
    assert "thisdb.streamed_body" not in obj.environ  # a transaction: as before
    assert obj.environ["CONTENT_LENGTH"] == "12"
    assert b"".join(obj.lines) == b'\n{"ops": []}'


@pytest.mark.parametrize(
    ("scope", "kind"),
    [
        (EXPORT_SCOPE, "export"),
        ({**EXPORT_SCOPE, "path": "/v1/b/"}, "export"),
        ({**EXPORT_SCOPE, "query_string": b"all=false&format=ndjson"}, None),
        ({**EXPORT_SCOPE, "query_string": b"format=ndjson&values=true"}, None),
        ({**EXPORT_SCOPE, "path": "/v1/b/key"}, None),  # a key's GET
        (upload_scope(), "upload"),
        (upload_scope(b"Application/X-NDJSON; charset=utf-8"), "upload"),
        (upload_scope(b"text/plain"), None),  # a transaction needs JSON; never an import
        (upload_scope(path="/v1/tokens"), None),
        (upload_scope(path="/v1/b/k"), None),  # a key's value, whatever its type
    ],
)
def test_only_exports_and_a_buckets_ndjson_or_json_posts_are_bulk(scope, kind):
    assert bulk_kind(scope) == kind


MULTIPART = b"multipart/form-data; boundary=x"


def test_the_bucket_pages_download_and_import_form_are_bulk():
    bucket = "AbCdEfGhIj0123456789"
    download = reverse("dashboard:export", args=[bucket])
    form = reverse("dashboard:import", args=[bucket])
    page_get = {**EXPORT_SCOPE, "query_string": b""}
    assert bulk_kind({**page_get, "path": download}) == "export"
    assert bulk_kind(upload_scope(MULTIPART, path=form)) == "upload"
    # Not the page itself, nor its other forms, nor a form of another type.
    assert bulk_kind({**page_get, "path": reverse("dashboard:bucket", args=[bucket])}) is None
    assert bulk_kind(upload_scope(MULTIPART, path=f"/buckets/{bucket}/key/")) is None
    assert bulk_kind(upload_scope(b"application/x-www-form-urlencoded", path=form)) is None
    assert bulk_kind({**page_get, "method": "POST", "path": download}) is None


def test_with_bulk_off_nothing_is_streamed_and_bodies_are_read_whole():
    """THISDB_BULK=false: an upload is read whole, as a transaction's body, and an export is
    a normal request (the API answers them as a server without bulk routes)."""
    app = Reader()
    wrapped = front(app, bulk=False)
    parts = [b'{"key": "a"}\n', b'{"key": "b"}\n']
    asyncio.run(wrapped(upload_scope(), body_chunks(*parts), collector()[1]))
    assert "thisdb.streamed_body" not in app.environ
    assert app.environ["CONTENT_LENGTH"] == "26"  # the chunked body, now whole
    assert app.lines == [b'{"key": "a"}\n', b'{"key": "b"}\n']

    threads = []

    def listing(environ, start_response):
        threads.append(threading.current_thread().name)
        start_response("200 OK", [])
        return [b"a page"]

    sent, send = collector()
    asyncio.run(front(listing, bulk=False)(EXPORT_SCOPE, body_chunks(b""), send))
    assert threads[0].startswith("django") and sent[1]["body"] == b"a page"
    asyncio.run(front(listing)(EXPORT_SCOPE, body_chunks(b""), collector()[1]))
    assert threads[1].startswith("bulk")  # with bulk on, the same request is an export


def test_a_stalled_body_raises_in_the_reading_thread_and_the_connection_closes():
    app = Reader()
    sent, send = collector()
    asyncio.run(
        front(app, body_timeout=0.2)(upload_scope(), body_chunks(b"a\n", then="stall"), send)
    )
    assert isinstance(app.error, BodyTimeout) and isinstance(app.error, OSError)
    assert "nothing arrived for 0.2 s (THISDB_BODY_TIMEOUT)" in str(app.error)
    assert app.lines == [b"a\n"]  # what came before the stall was read
    assert sent[0]["status"] == 400
    assert (b"connection", b"close") in sent[0]["headers"]


def test_a_body_broken_off_raises_in_the_reading_thread():
    app = Reader()
    asyncio.run(front(app)(upload_scope(), body_chunks(b"a\n", b"b", then="leave"), collector()[1]))
    assert isinstance(app.error, BodyBroken)
    assert "the client disconnected" in str(app.error)
    assert app.lines == [b"a\n"]


@pytest.mark.parametrize("then", ["leave", "stall"])
def test_a_read_of_a_block_gives_what_came_before_the_break_and_the_next_read_raises(then):
    """The import reads 64 KiB at a time (api.imports): the lines that came whole before the
    body broke off or stalled are read, and applied, even when they do not fill the block."""
    reads: list = []

    def app(environ, start_response):
        body = environ["wsgi.input"]
        for _ in range(3):
            try:
                reads.append(body.read(65536))
            except OSError as error:
                reads.append(error)
        start_response("400 Bad Request", [])
        return [b""]

    parts = (b'{"key": "a"}\n', b'{"key": "b"}\n{"ke')
    asyncio.run(
        front(app, body_timeout=0.2)(upload_scope(), body_chunks(*parts, then=then), collector()[1])
    )
    assert reads[0] == b'{"key": "a"}\n{"key": "b"}\n{"ke'
    error = BodyBroken if then == "leave" else BodyTimeout
    assert isinstance(reads[1], error) and reads[2] is reads[1]  # and stays an error


def test_bulk_requests_run_beside_normal_ones_and_past_their_threads_are_503():
    release = threading.Event()
    normal_served = []

    def app(environ, start_response):
        if environ["REQUEST_METHOD"] == "GET" and "all=" in environ["QUERY_STRING"]:
            release.wait(5)  # an export in progress
        else:
            normal_served.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b"ok"]

    async def scenario():
        wrapped = front(app, threads=1, bulk_threads=1)
        never = body_chunks(then="stall")
        export = asyncio.ensure_future(wrapped(EXPORT_SCOPE, never, collector()[1]))
        await asyncio.sleep(0.05)
        sent, send = collector()
        await wrapped({**EXPORT_SCOPE, "query_string": b""}, never, send)  # a normal GET
        assert sent[0]["status"] == 200 and normal_served == ["/v1/b"]
        busy, send_busy = collector()
        await wrapped(EXPORT_SCOPE, never, send_busy)  # a second export: no bulk thread free
        assert busy[0]["status"] == 503
        assert (b"retry-after", b"5") in busy[0]["headers"]
        assert busy[1]["body"].startswith(b"this server is busy with other bulk transfers")
        release.set()
        await export
        again, send_again = collector()
        await wrapped(EXPORT_SCOPE, never, send_again)  # its thread is free again
        assert again[0]["status"] == 200

    asyncio.run(scenario())
