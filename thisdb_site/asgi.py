"""The ASGI application `make serve` runs under granian.

Django is synchronous here (its ORM and our views), so each request it serves takes a thread and,
while it talks to PostgreSQL, a pooled connection. What stands in front keeps both bounded:

- A request's body is read in full on the event loop before Django sees the request, within
  THISDB_BODY_TIMEOUT seconds (408 after that) and up to the largest body the API takes: a client
  that uploads one byte every two seconds costs a coroutine, never a thread or a connection.
- At most THISDB_WEB_THREADS requests are inside Django at once per process; the others wait
  their turn on the event loop. A request gives its turn back once its answer starts, so a
  client that reads slowly does not keep one either.

Slow headers are the server's to refuse (granian's --http1-header-read-timeout, `make serve`).
"""

import asyncio
import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "thisdb_site.settings")


class BoundedRequests:
    """ASGI middleware: the whole body first, with a deadline; then a bounded number of
    requests in the wrapped application at once."""

    def __init__(self, app, *, max_body: int, body_timeout: float, concurrency: int):
        self.app = app
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.concurrency = concurrency
        self._turns: asyncio.Semaphore | None = None  # made on the server's event loop

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            body, disconnected = await asyncio.wait_for(self._read(receive), self.body_timeout)
        except TimeoutError:
            return await self._answer(send, 408, "the request body did not arrive in time")
        if disconnected:
            return  # the client left: nobody to answer
        if self._turns is None:
            self._turns = asyncio.Semaphore(self.concurrency)
        turn = _Turn(self._turns)
        await turn.take()
        try:
            await self.app(scope, _replay(body, receive), turn.release_on_start(send))
        finally:
            turn.give_back()

    async def _read(self, receive) -> tuple[bytes, bool]:
        """The body, or as much of it as makes it too large (the application refuses it then)."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", True
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if not message.get("more_body") or size > self.max_body:
                return b"".join(chunks), False

    @staticmethod
    async def _answer(send, status: int, message: str) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": message.encode()})

    @staticmethod
    async def _lifespan(receive, send) -> None:
        # Django speaks no lifespan protocol: say yes to the server's start and stop.
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


class _Turn:
    """One request's place among the THISDB_WEB_THREADS, given back exactly once."""

    def __init__(self, turns: asyncio.Semaphore):
        self.turns, self.held = turns, False

    async def take(self) -> None:
        await self.turns.acquire()
        self.held = True

    def give_back(self) -> None:
        if self.held:
            self.held = False
            self.turns.release()

    def release_on_start(self, send):
        async def sending(message):
            if message["type"] == "http.response.start":
                self.give_back()  # Django's work is done; the rest is the client's pace
            await send(message)

        return sending


def _replay(body: bytes, receive):
    """A receive() that gives the buffered body once, then waits for the client's disconnect
    (the rest of a body too large to be read whole is dropped on the way)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message

    return replay


django_application = get_asgi_application()
application = BoundedRequests(
    django_application,
    # The largest body the platform takes (a 1 MiB value, plus room for a form's fields); one
    # byte more and the API answers 413 itself.
    max_body=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
    body_timeout=settings.THISDB_BODY_TIMEOUT,
    concurrency=settings.THISDB_WEB_THREADS,
)
