"""The two directions of a bulk transfer through the front (thisdb_site.front), between the
event loop, which talks to the client, and the bulk thread that runs Django.

- StreamedBody: a request body read as it arrives, as a blocking file (read, readline,
  iteration) for Django's thread, with one chunk read ahead: constant memory whatever its size.
- StreamedAnswer: a streaming answer (Django's StreamingHttpResponse) sent chunk by chunk,
  each handed to the server before the thread makes the next (backpressure: a client that reads
  slowly slows the export down, it never piles up in memory).

A client that stalls for the body timeout, breaks a body off or leaves is an OSError in the
thread (BodyError, ClientGone): the import stops where it is, the export stops making lines.
"""

import asyncio
import io
from concurrent.futures import Future


class BodyError(OSError):
    """The request body cannot be read to its end."""


class BodyTimeout(BodyError):
    pass


class BodyBroken(BodyError):
    pass


class ClientGone(OSError):
    """The client of a streamed answer left, or read nothing for the timeout."""


class _BodyChunks(io.RawIOBase):
    """The body's chunks as ASGI's receive() gives them, fetched through the event loop."""

    def __init__(self, loop, receive, timeout: float, started: list[bytes], more: bool):
        self.loop, self.receive, self.timeout = loop, receive, timeout
        self.chunk = memoryview(b"".join(started))  # what the front read already
        self.ended = not more  # the last message of the body has arrived
        self.error: BodyError | None = None
        # The next chunk, asked for as soon as the one before it is taken: the client sends on
        # while Django works on what it has. One chunk ahead, at most (granian reads no more
        # than it is asked for: memory stays flat).
        self.ahead: Future | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.chunk:
            if self.ended:
                return 0
            self.chunk = memoryview(self._take())
        size = min(len(buffer), len(self.chunk))
        buffer[:size] = self.chunk[:size]
        self.chunk = self.chunk[size:]
        return size

    def _take(self) -> bytes:
        if self.error is not None:
            raise self.error
        if self.closed:
            raise BodyBroken("the request body was closed")
        future = self.ahead or self._ask()
        self.ahead = None
        try:
            chunk, more = future.result()
        except BodyError as error:
            self.error = error
            raise
        if more:
            self.ahead = self._ask()
        else:
            self.ended = True
        return chunk

    def _ask(self) -> Future:
        return asyncio.run_coroutine_threadsafe(self._next_chunk(), self.loop)

    async def _next_chunk(self) -> tuple[bytes, bool]:
        try:
            async with asyncio.timeout(self.timeout):
                message = await self.receive()
        except TimeoutError:
            raise BodyTimeout(
                f"the request body stalled: nothing arrived for {self.timeout:g} s "
                "(THISDB_BODY_TIMEOUT)"
            ) from None
        if message["type"] == "http.disconnect":
            raise BodyBroken(
                "the request body ended early: the client disconnected, or sent a malformed "
                "chunk or fewer bytes than its Content-Length"
            )
        return message.get("body", b""), bool(message.get("more_body"))

    def close(self) -> None:
        if self.ahead is not None:
            self.ahead.cancel()  # the client may send on; nobody reads it now
            self.ahead = None
        super().close()


class StreamedBody(io.BufferedReader):
    """A request body as a blocking file for a Django thread, fed from ASGI's receive() on the
    event loop (WSGI's wsgi.input). Reading past a stall of `timeout` seconds, or a body the
    client broke off, raises a BodyError (an OSError)."""

    raw: _BodyChunks

    def __init__(self, loop, receive, timeout: float, started: list[bytes], more: bool):
        super().__init__(_BodyChunks(loop, receive, timeout, started, more), 64 * 1024)

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes, as BufferedReader.read, except when the body breaks off or
        stalls during the read: what arrived before is returned, and the next read raises.
        (BufferedReader's own read drops what it gathered in a call that fails: up to `size`
        bytes the client did send, so an import would stop lines short of where it could.)"""
        if size is None or size < 0:
            return super().read(size)  # the whole body, or its error
        pieces: list[bytes] = []
        got = 0
        while got < size:
            try:
                piece = self.read1(size - got)  # one chunk at most: nothing held when it fails
            except BodyError:
                if not pieces:
                    raise
                break  # kept in raw.error: the next read raises it
            if not piece:
                break
            pieces.append(piece)
            got += len(piece)
        return b"".join(pieces)

    @property
    def ended(self) -> bool:
        """The client has sent the whole body (what is left of it may wait unread here)."""
        return self.raw.ended


class StreamedAnswer:
    """A streaming answer, sent from a Django thread through the event loop: start(), send() for
    each chunk, end(). Each call returns once the server has taken the message; ClientGone when
    the client left or took nothing for `timeout` seconds."""

    def __init__(self, loop, send, receive, timeout: float, body: StreamedBody):
        self.loop, self._send, self.receive, self.timeout = loop, send, receive, timeout
        self.body = body
        self.gone = False  # set on the event loop, read by the thread
        self.listening: asyncio.Future | None = None

    def start(self, status: int, headers: list) -> None:
        self._call(self._start(status, headers))

    def send(self, chunk: bytes) -> None:
        self._call(self._message({"type": "http.response.body", "body": chunk, "more_body": True}))

    def end(self) -> None:
        self._call(self._message({"type": "http.response.body", "body": b"", "more_body": False}))

    def close(self) -> None:
        """On the event loop, once the thread is done: stop listening for the client."""
        if self.listening is not None:
            self.listening.cancel()

    def _call(self, coroutine) -> None:
        if self.gone:
            coroutine.close()
            raise ClientGone("the client left")
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            future.result(timeout=self.timeout)
        except TimeoutError:
            future.cancel()
            self.gone = True
            raise ClientGone(f"the client read nothing for {self.timeout:g} s") from None
        except OSError as error:
            self.gone = True
            raise ClientGone("the client left") from error

    async def _message(self, message: dict) -> None:
        # A coroutine for run_coroutine_threadsafe (granian's send() gives an awaitable).
        await self._send(message)

    async def _start(self, status: int, headers: list) -> None:
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        if self.body.ended:
            # The request is all in: its next message can only say the client left. (granian's
            # send() does not: it drops what a closed connection cannot take.)
            self._listen()

    def _listen(self) -> None:
        def left(received: asyncio.Future) -> None:
            if received.cancelled() or received.exception() is not None:
                return
            if received.result()["type"] == "http.disconnect":
                self.gone = True
            else:  # more of a body nobody sent: listen on
                self._listen()

        self.listening = asyncio.ensure_future(self.receive())
        self.listening.add_done_callback(left)
