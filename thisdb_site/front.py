"""The front of the production web tier (thisdb_site.asgi): an ASGI application that reads each
request's body on the event loop, then runs a WSGI application in a bounded pool of threads.

Bulk transfers (api.exports, and the import's streamed body; the bucket page's download and
import upload likewise) are the exception: their bodies and answers can be any size, so they are
streamed both ways, through a small pool of threads of their own (thisdb_site.streams holds the
two directions)."""

import asyncio
import io
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl, unquote_to_bytes

from thisdb_site import requestlog
from thisdb_site.streams import ClientGone, StreamedAnswer, StreamedBody

logger = logging.getLogger(__name__)

BODY_TOO_SLOW = b"the request body did not arrive in time"
BODY_MALFORMED = (
    b"the request body is malformed or ended early: send exactly Content-Length bytes, "
    b"or a valid chunked body"
)
BULK_BUSY = (
    b"this server is busy with other bulk transfers (exports and imports): "
    b"try again in a few seconds (see Retry-After)"
)
BULK_RETRY_AFTER = b"5"  # s: about a 100,000-key export at the measured rate

EXPORT, UPLOAD = "export", "upload"
# /v1/<bucket> (or /v1/<bucket>/): one path segment, no key; /v1/tokens is not a bucket.
_BUCKET_PATH = re.compile(r"/v1/([^/]+)/?")
# The bucket page's (dashboard.urls) "Download all" and its import form's upload: bulk transfers
# too, so an export is streamed rather than held whole and an upload of any size up to the
# page's limit (THISDB_PAGE_IMPORT_MAX_BYTES) reaches Django, which spills it to a file.
_PAGE_EXPORT = re.compile(r"/buckets/[A-Za-z0-9]+/export/")
_PAGE_IMPORT = re.compile(r"/buckets/[A-Za-z0-9]+/import/")
_JSON_BLANKS = b" \t\r\n"  # what may come before a JSON document's first byte (RFC 8259)


class BufferedWSGI:
    """ASGI application: the whole body first, with a deadline; then the WSGI application in a
    bounded pool of threads; then the whole answer. A bulk transfer instead runs in a pool of
    its own, reading its body and sending its answer as they go."""

    def __init__(
        self,
        wsgi_app,
        *,
        max_body: int,
        body_timeout: float,
        threads: int,
        bulk_threads: int = 1,
        bulk: bool = True,
        takeovers: dict[bytes, Callable] | None = None,
        on_startup: Callable[[], None] | None = None,
        log_requests: bool = False,
        proxy_count: int = 0,
    ):
        self.wsgi_app = wsgi_app
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="django")
        # Exports and imports last seconds to minutes: in threads of their own, so they never
        # take the threads normal requests wait for. Past them a bulk request is refused at once
        # (503, Retry-After) rather than queued: a queued one would wait silently, for minutes,
        # past its client's timeout, with its upload stalled.
        self.bulk_threads = ThreadPoolExecutor(max_workers=bulk_threads, thread_name_prefix="bulk")
        self.bulk_slots = threading.BoundedSemaphore(bulk_threads)
        # False (THISDB_BULK): the API has no exports or imports, so nothing is streamed: an
        # all= listing is a page and an NDJSON or array body a transaction's, read whole.
        self.bulk = bulk
        # An answer with one of these headers (lowercase) is not sent as it is: the header is
        # taken out and its handler takes the connection over, on the event loop (a watch
        # stream, api.watchhub), called with the header's value, the status, the other headers,
        # the body, send and receive.
        self.takeovers = takeovers or {}
        # Called on the worker's event loop when it starts (ASGI lifespan), before any request.
        self.on_startup = on_startup
        # The answers the front gives itself get a request id and, when true, a log line, as
        # Django's do (thisdb_site.requestlog; the client's address behind proxy_count proxies).
        self.log_requests = log_requests
        self.proxy_count = proxy_count

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return  # no websockets here
        arrived = time.perf_counter()  # a request's duration counts its body's arrival too
        kind = bulk_kind(scope) if self.bulk else None
        started: list[bytes] = []  # body chunks read already (a JSON body's first bytes)
        more: bool | None = has_body(scope)
        if kind == UPLOAD:
            if not more:
                kind = None
            elif content_type(scope) == b"application/json":
                # A JSON array is Workers KV's bulk format, streamed; an object is a transaction,
                # read whole as any other body. Its first byte that is not blank tells them apart.
                try:
                    async with asyncio.timeout(self.body_timeout):
                        started, more, first = await self._peek(receive)
                except TimeoutError:
                    return await self._refuse(scope, arrived, send, 408, BODY_TOO_SLOW)
                if more is None:
                    return await self._refuse(scope, arrived, send, 400, BODY_MALFORMED)
                if first != b"[":
                    kind = None
        if kind is not None:
            return await self._bulk(scope, arrived, receive, send, started, more)
        if more:
            try:
                async with asyncio.timeout(self.body_timeout):
                    body, complete = await self._read(receive, started)
            except TimeoutError:
                return await self._refuse(scope, arrived, send, 408, BODY_TOO_SLOW)
            if complete is None:
                # granian ends a body with a disconnect when the client left, but also when the
                # body is malformed (a chunk size that is not hex) or ends early (fewer bytes
                # than Content-Length, then a half-close). Left unanswered, granian answers 500:
                # answer 400, which reaches the client if it is still there.
                return await self._refuse(scope, arrived, send, 400, BODY_MALFORMED)
        else:
            # No Content-Length, no Transfer-Encoding: no body (or a JSON body read whole).
            body, complete = b"".join(started), True
        environ = wsgi_environ(scope, body, complete)
        environ["thisdb.front"] = True  # what can take a connection over is here (api.watching)
        environ[requestlog.ENVIRON_STARTED] = arrived
        del body, started
        loop = asyncio.get_running_loop()
        outcome = await loop.run_in_executor(self.threads, self._run, environ)
        # A taken-over answer (a watch stream) lives for hours in the call below: this frame
        # lets go of the request first (the environ, and granian's scope with its headers).
        finish = self._finish(scope, *outcome, send, receive)
        del environ, scope, outcome
        await finish

    async def _bulk(
        self, scope, arrived: float, receive, send, started: list[bytes], more: bool | None
    ) -> None:
        """An export or a streamed upload: Django starts at once, in a bulk thread, reading the
        body as it arrives (StreamedBody) and sending a streamed answer as it is made
        (StreamedAnswer)."""
        if not self.bulk_slots.acquire(blocking=False):
            headers = [(b"retry-after", BULK_RETRY_AFTER)]
            return await self._refuse(scope, arrived, send, 503, BULK_BUSY, headers)
        loop = asyncio.get_running_loop()
        body = StreamedBody(loop, receive, self.body_timeout, started, bool(more))
        answer = StreamedAnswer(loop, send, receive, self.body_timeout, body)
        streamed = more or bool(started)  # a body, even one that came whole in the peek
        environ = wsgi_environ(scope, b"", True, stream=body if streamed else None)
        environ["thisdb.front"] = True
        environ[requestlog.ENVIRON_STARTED] = arrived
        try:
            outcome = await loop.run_in_executor(self.bulk_threads, self._run_bulk, environ, answer)
        finally:
            body.close()  # no read-ahead left waiting on the client
        if outcome is None:
            return  # the thread sent the answer itself (or the client left)
        status, headers, content = outcome
        if more and not body.ended:
            # Answered before the body's end (a bad line): what is left of it cannot be told
            # from a next request.
            headers.append((b"connection", b"close"))
        await self._finish(scope, status, headers, content, send, receive)

    async def _finish(self, scope, status: int, headers: list, content: bytes, send, receive):
        if self.takeovers:
            for i, (name, value) in enumerate(headers):
                handler = self.takeovers.get(name)
                if handler is not None:
                    del headers[i]
                    # What this frame holds lives as long as the taken-over connection (a watch
                    # stream: hours): only the handler's call keeps what it needs.
                    call = handler(value, status, headers, content, send, receive)
                    del scope, headers, content, value
                    return await call
        await self._answer(send, status, headers, content)

    async def _peek(self, receive) -> tuple[list[bytes], bool | None, bytes]:
        """The body's chunks up to its first byte that is not blank (or its end, or max_body),
        whether more follows (None: the client left or broke it off), and that byte (b"" if
        none)."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return [], None, b""
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            rest = chunk.lstrip(_JSON_BLANKS)
            more = bool(message.get("more_body"))
            if rest or not more or size > self.max_body:
                return chunks, more, rest[:1]

    async def _read(self, receive, started: list[bytes]) -> tuple[bytes, bool | None]:
        """The body and whether it is whole (False: cut past max_body, for the application to
        refuse as too large; None: it never ended, the client left or broke it off)."""
        chunks, size = list(started), sum(map(len, started))
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", None
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if not message.get("more_body"):
                return b"".join(chunks), True
            if size > self.max_body:
                return b"".join(chunks), False

    def _run(self, environ) -> tuple[int, list, bytes]:
        """The WSGI call, in a thread of the pool: the status, headers and whole body (a
        streaming one too: in this pool it is a small file, WhiteNoise's)."""
        started: list = []
        result = self.wsgi_app(environ, _recorder(started))
        try:
            content = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()  # Django's request_finished: the pooled connection goes back
        return _status(started[0]), _encoded(started[1]), content

    def _run_bulk(self, environ, answer: StreamedAnswer) -> tuple[int, list, bytes] | None:
        """The WSGI call in a bulk thread. A streaming answer (an export) goes out from here,
        chunk by chunk, each handed to the server before the next is made (None returned);
        any other comes back whole, as _run's."""
        try:
            started: list = []
            result = self.wsgi_app(environ, _recorder(started))
            try:
                if not getattr(result, "streaming", False):
                    return _status(started[0]), _encoded(started[1]), b"".join(result)
                answer.start(_status(started[0]), _encoded(started[1]))
                for chunk in result:
                    if chunk:
                        answer.send(chunk)
                answer.end()
            except ClientGone:
                pass  # stop making what nobody reads
            except Exception:
                # The head is out: the answer can only be cut short, which the client sees
                # (the chunked body has no end). Logged, as Django logs a failed request.
                logger.exception("a streamed answer failed: %s", environ.get("PATH_INFO"))
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()  # the export's snapshot ends; the pooled connection goes back
            return None
        finally:
            self.bulk_slots.release()

    async def _refuse(
        self, scope, arrived: float, send, status: int, message: bytes, headers=()
    ) -> None:
        """An answer of the front's own, in plain text, with the request's id (and its log
        line); the connection closes after it (what is left of the body cannot be told from a
        next request)."""
        rid = requestlog.request_id(_header(scope, b"x-request-id"))
        head = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"connection", b"close"),
            (b"x-request-id", rid.encode()),
        ]
        await self._answer(send, status, [*head, *headers], message)
        if self.log_requests:
            client = scope.get("client") or ("", 0)
            forwarded = _header(scope, b"x-forwarded-for")
            address = requestlog.client_address(client[0], forwarded, self.proxy_count)
            requestlog.log_request(rid, scope["method"], None, status, arrived, None, address)

    @staticmethod
    async def _answer(send, status: int, headers: list, content: bytes) -> None:
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": content})
        except OSError:
            pass  # the client is gone

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.on_startup is not None:
                    self.on_startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def _recorder(started: list):
    """A WSGI start_response that keeps the status and headers in `started`."""

    def start_response(status, headers, exc_info=None):
        if exc_info and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [status, headers]
        return _no_write

    return start_response


def _no_write(data: bytes) -> None:
    # PEP 3333's write(), which Django never calls: refuse rather than lose the bytes.
    raise NotImplementedError("write() is not supported: return the body")


def _status(status: str) -> int:
    return int(status.split(" ", 1)[0])


def _encoded(headers: list) -> list[tuple[bytes, bytes]]:
    return [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in headers]


def has_body(scope) -> bool:
    """Whether the request says a body follows (HTTP/1.1: Content-Length or Transfer-Encoding)."""
    for name, value in scope.get("headers", ()):
        name = name.lower()  # ASGI servers send them lowercased; a client's case is no matter
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False


def _header(scope, wanted: bytes) -> str | None:
    """A request header's value (several: joined by commas, as WSGI joins them), or None."""
    values = [v for n, v in scope.get("headers", ()) if n.lower() == wanted]
    return b",".join(values).decode("latin-1") if values else None


def content_type(scope) -> bytes:
    """The request's media type, lowercased, without its parameters (b"" if none)."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-type":
            return value.split(b";", 1)[0].strip().lower()
    return b""


def bulk_kind(scope) -> str | None:
    """EXPORT for a bucket's GET with all= (api.exports), UPLOAD for a POST to a bucket whose
    body may be an import (NDJSON, or JSON: an array is one), else None. The bucket page's
    download (a GET) and import form (a multipart POST) likewise."""
    method = scope["method"]
    if method == "GET" and _PAGE_EXPORT.fullmatch(scope["path"]):
        return EXPORT
    if method == "POST" and _PAGE_IMPORT.fullmatch(scope["path"]):
        return UPLOAD if content_type(scope) == b"multipart/form-data" else None
    if method not in ("GET", "HEAD", "POST") or not scope["path"].startswith("/v1/"):
        return None
    match = _BUCKET_PATH.fullmatch(scope["path"])
    if match is None or match[1] == "tokens":
        return None
    if method == "POST":
        kind = content_type(scope)
        return UPLOAD if kind in (b"application/x-ndjson", b"application/json") else None
    query = scope.get("query_string", b"")
    if b"all=" not in query:
        return None
    wanted = [v for k, v in parse_qsl(query.decode("latin-1")) if k == "all"]
    # all=false (or an empty all=) is a page of the listing, as the view reads it
    return EXPORT if wanted and wanted[-1].strip().lower() not in ("false", "0", "no", "") else None


def wsgi_environ(scope, body: bytes, complete: bool, stream: io.IOBase | None = None) -> dict:
    """The WSGI environ a WSGI server would build for this request (PEP 3333): the path as its
    percent-decoded raw bytes read as Latin-1, the query string as received. With `stream`, the
    body is read from it as it arrives (no CONTENT_LENGTH is made up for a chunked one)."""
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
    path = unquote_to_bytes(raw_path.split(b"?", 1)[0]).decode("latin-1")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root,
        "PATH_INFO": path,
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1] or 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": client[0],
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body) if stream is None else stream,
        # Read wsgi.input to b"": the whole body is here, or arrives as it is read (chunked
        # or not). The bulk import relies on it.
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in scope.get("headers", []):
        key = name.decode("latin-1").upper().replace("-", "_")
        if key not in ("CONTENT_LENGTH", "CONTENT_TYPE"):
            key = "HTTP_" + key
        text = value.decode("latin-1")
        environ[key] = f"{environ[key]},{text}" if key in environ else text
    if stream is not None:
        environ["thisdb.streamed_body"] = True
    elif complete and "CONTENT_LENGTH" not in environ:
        environ["CONTENT_LENGTH"] = str(len(body))  # a chunked body, now whole
    return environ
