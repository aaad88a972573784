"""The front of the production web tier (thisdb_site.asgi): an ASGI application that reads each
request's body on the event loop, then runs a WSGI application in a bounded pool of threads."""

import asyncio
import io
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote_to_bytes

BODY_TOO_SLOW = b"the request body did not arrive in time"
BODY_MALFORMED = (
    b"the request body is malformed or ended early: send exactly Content-Length bytes, "
    b"or a valid chunked body"
)


class BufferedWSGI:
    """ASGI application: the whole body first, with a deadline; then the WSGI application in a
    bounded pool of threads; then the whole answer."""

    def __init__(
        self,
        wsgi_app,
        *,
        max_body: int,
        body_timeout: float,
        threads: int,
        takeovers: dict[bytes, Callable] | None = None,
        on_startup: Callable[[], None] | None = None,
    ):
        self.wsgi_app = wsgi_app
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="django")
        # An answer with one of these headers (lowercase) is not sent as it is: the header is
        # taken out and its handler takes the connection over, on the event loop (a watch
        # stream, api.watchhub), called with the header's value, the status, the other headers,
        # the body, send and receive.
        self.takeovers = takeovers or {}
        # Called on the worker's event loop when it starts (ASGI lifespan), before any request.
        self.on_startup = on_startup

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return  # no websockets here
        if has_body(scope):
            try:
                async with asyncio.timeout(self.body_timeout):
                    body, complete = await self._read(receive)
            except TimeoutError:
                return await self._refuse(send, 408, BODY_TOO_SLOW)
            if complete is None:
                # granian ends a body with a disconnect when the client left, but also when the
                # body is malformed (a chunk size that is not hex) or ends early (fewer bytes
                # than Content-Length, then a half-close). Left unanswered, granian answers 500:
                # answer 400, which reaches the client if it is still there.
                return await self._refuse(send, 400, BODY_MALFORMED)
        else:
            body, complete = b"", True  # no Content-Length, no Transfer-Encoding: no body
        environ = wsgi_environ(scope, body, complete)
        environ["thisdb.front"] = True  # what can take a connection over is here (api.watching)
        loop = asyncio.get_running_loop()
        status, headers, content = await loop.run_in_executor(self.threads, self._run, environ)
        if self.takeovers:
            for i, (name, value) in enumerate(headers):
                handler = self.takeovers.get(name)
                if handler is not None:
                    del headers[i]
                    # What this frame holds lives as long as the taken-over connection (a watch
                    # stream: hours): only the handler's call keeps what it needs.
                    call = handler(value, status, headers, content, send, receive)
                    del environ, body, scope, headers, content, value
                    return await call
        await self._answer(send, status, headers, content)

    async def _read(self, receive) -> tuple[bytes, bool | None]:
        """The body and whether it is whole (False: cut past max_body, for the application to
        refuse as too large; None: it never ended, the client left or broke it off)."""
        chunks, size = [], 0
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
        """The WSGI call, in a thread of the pool: the status, headers and whole body."""
        started: list = []
        written: list[bytes] = []

        def start_response(status, headers, exc_info=None):
            if exc_info and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return written.append

        result = self.wsgi_app(environ, start_response)
        try:
            for chunk in result:
                written.append(chunk)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()  # Django's request_finished: the pooled connection goes back
        status, headers = started
        encoded = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in headers]
        return int(status.split(" ", 1)[0]), encoded, b"".join(written)

    @classmethod
    async def _refuse(cls, send, status: int, message: bytes) -> None:
        """An answer of the front's own, in plain text; the connection closes after it (what is
        left of the body cannot be told from a next request)."""
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
        await cls._answer(send, status, headers, message)

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


def has_body(scope) -> bool:
    """Whether the request says a body follows (HTTP/1.1: Content-Length or Transfer-Encoding)."""
    for name, value in scope.get("headers", ()):
        name = name.lower()  # ASGI servers send them lowercased; a client's case is no matter
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False


def wsgi_environ(scope, body: bytes, complete: bool) -> dict:
    """The WSGI environ a WSGI server would build for this request (PEP 3333): the path as its
    percent-decoded raw bytes read as Latin-1, the query string as received."""
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
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,  # the whole body is here, chunked or not
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
    if complete and "CONTENT_LENGTH" not in environ:
        environ["CONTENT_LENGTH"] = str(len(body))  # a chunked body, now whole
    return environ
