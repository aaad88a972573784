"""Watching the keys under a prefix of a bucket as they change: one long
`GET /v1/<bucket>?watch=true` answered with Server-Sent Events, connected again after a drop
from the last position seen (Watch, AsyncWatch), and the long-poll form of the same (`changes`).

Both clients' watches share everything here but how they wait and read: what to ask for, what
an answer means, the position, and when to connect again.
"""

from __future__ import annotations

import json
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any

import anyio
import httpx

from thisdb import _core
from thisdb._base import BaseClient
from thisdb._core import MAX_JITTER, RETRY_AFTER_JITTER, Call, segment
from thisdb._sse import Message, Reader
from thisdb.errors import (
    ClientClosed,
    InvalidArgument,
    NetworkError,
    UnexpectedResponse,
    WatchCancelled,
)
from thisdb.models import Changes, Delete, Event, Put, Reset

# A position in a bucket's history: a whole number, which the API writes as a string (and the
# client gives so); one is taken as a str or an int.
Position = str | int

EVENT_STREAM = "text/event-stream"
# The server sends a comment at least every 15 s: a stream silent for three of them is dead (a
# connection dropped without a word, as behind NAT), so it is given up and connected again.
WATCH_READ_TIMEOUT = 45.0
# Connections refused or dropped in a row wait 0.25-0.5 s, 0.5-1 s, 1-2 s... up to this long
# (or longer when the server's `retry:` or Retry-After says so).
MAX_BACKOFF = 30.0
MAX_WAIT = 60  # the long-poll's longest wait, in seconds (the API's)


def position_text(position: Position) -> str:
    """A position as the API writes it: a whole number >= 0, in decimal."""
    if isinstance(position, bool) or not isinstance(position, str | int):
        raise TypeError(f"a position must be a str or an int, not {type(position).__name__}")
    text = str(position)
    if not _is_position(text):
        raise InvalidArgument(f"not a position: {text!r} (a whole number >= 0)")
    return text


def _is_position(text: str) -> bool:
    return text.isascii() and text.isdigit()


def event_of(kind: str, position: str | None, data: Any) -> Event | None:
    """The event of a `put`, `delete` or `reset` (the fields of the SSE block's data, or of a
    long-poll's entry); None for a type this client does not know (a newer server's), which is
    passed over. ValueError when it is malformed."""
    if kind not in ("put", "delete", "reset"):
        return None
    if not isinstance(data, dict):
        raise ValueError(f"the data of a {kind} is not a JSON object")
    if kind == "reset":
        reason = data.get("reason")
        return Reset(position, reason if isinstance(reason, str) else "history")
    key, version = data.get("key"), _core._listed_version(data.get("version"))
    if not isinstance(key, str):
        raise ValueError(f"a {kind} has no key")
    if version is None:
        raise ValueError(f"the {kind} of {key!r} has no version")
    if kind == "put":
        ttl = data.get("ttl")
        if isinstance(ttl, bool) or not isinstance(ttl, int):
            raise ValueError(f"the put of {key!r} has no ttl")
        return Put(position, key, _core.decode_value(data), version, ttl)
    reason = data.get("reason")
    if position is None:
        raise ValueError(f"the delete of {key!r} has no position")
    return Delete(position, key, version, reason if isinstance(reason, str) else "deleted")


# --- the long-poll ---------------------------------------------------------------------------


def changes(bucket: str, prefix: str, since: Position | None, wait: int) -> Call[Changes]:
    params = {"watch": "true", "format": "json", "wait": _core._whole(wait, "wait")}
    if not 0 <= wait <= MAX_WAIT:
        raise InvalidArgument(f"wait must be 0 to {MAX_WAIT} seconds, not {wait}")
    if since is not None:
        params["since"] = position_text(since)
    if _prefix(prefix):
        params["prefix"] = prefix
    return Call("GET", "/" + segment(bucket, "bucket"), _changes, params=params, wait=wait)


def _changes(response: httpx.Response) -> Changes:
    data = _core._json(response)
    entries = data.get("events") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise UnexpectedResponse("expected a JSON object with events", response)
    events = []
    for index, entry in enumerate(entries):
        try:
            if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
                raise ValueError("no type")
            position = entry.get("id")
            position = str(position) if isinstance(position, str | int) else None
            event = event_of(entry["type"], position, entry)
        except ValueError as exc:
            raise UnexpectedResponse(f"event {index}: {exc}", response) from None
        if event is not None:
            events.append(event)
    following = data.get("next")
    return Changes(events, str(following) if isinstance(following, str | int) else None)


def _prefix(prefix: str) -> str:
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
    return prefix


# --- the stream ------------------------------------------------------------------------------


class WatchBase:
    """What a watch of either client holds: what it asks for, the position, what came, and the
    rule for connecting again."""

    def __init__(
        self,
        client: BaseClient,
        bucket: str,
        prefix: str,
        since: Position | None,
        snapshot: bool,
    ):
        self._client = client
        self._path = "/" + segment(bucket, "bucket")
        self._prefix = _prefix(prefix)
        self._since = None if since is None else position_text(since)
        self._position = self._since
        self._snapshot = bool(snapshot)
        # True from the start of a snapshot until the first event with a position: the
        # snapshot's last key, or with an empty snapshot the first change after it.
        self._in_snapshot = self._snapshot
        self._snapshot_given = 0  # keys of this snapshot given out so far
        self._restarted = False  # a snapshot was cut off: announce the new one with a Reset
        self._pending: deque[Event] = deque()
        self._reader = Reader()
        self._retry_hint = 0.0  # the server's `retry:`, in seconds
        self._failures = 0  # connections refused or dropped in a row
        self._wait = 0.0  # before the next connection
        self._opened = False  # the stream was open once: from then on, failures reconnect
        self._closed = False
        self.reconnects = 0
        """How many times the watch connected again after a drop."""

    @property
    def position(self) -> str | None:
        """The position of the last event given (or of the stream's start): pass it as
        `since=` to a later watch to go on from there. None before the stream opened, when no
        `since` was given. During a snapshot it stays where the snapshot started."""
        return self._position

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._path} prefix={self._prefix!r} at {self._position}>"

    def _request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        params = {"watch": "true"}
        if self._prefix:
            params["prefix"] = self._prefix
        headers = {"Accept": EVENT_STREAM, "Cache-Control": "no-cache"}
        if self._in_snapshot:
            # A snapshot not given in full is asked for again, the same way as at first.
            if self._snapshot:
                params["snapshot"] = "true"
            if self._since is not None:
                params["since"] = self._since
        elif self._position is not None:
            params["since"] = self._position
            if self._opened:
                headers["Last-Event-ID"] = self._position  # what a reconnecting client sends
        call = Call("GET", self._path, _core.raw, params=params, headers=headers)
        request = _core.build_request(http, self._client.base_url, call)
        timeout = http.timeout
        request.extensions["timeout"] = httpx.Timeout(
            connect=timeout.connect, read=WATCH_READ_TIMEOUT, write=timeout.write, pool=timeout.pool
        ).as_dict()
        return request

    def _check_open(self, http: httpx.Client | httpx.AsyncClient) -> None:
        if http.is_closed:
            raise ClientClosed("the client is closed: make a new one")

    @staticmethod
    def _is_stream(response: httpx.Response) -> bool:
        return response.status_code == 200 and _core.media_type(response) == EVENT_STREAM

    def _started(self, response: httpx.Response) -> None:
        """The stream is open."""
        self._client.rate_limit = _core.rate_limit(response)
        if self._opened:
            self.reconnects += 1
        self._opened = True
        self._failures = 0
        self._reader = Reader()
        if self._restarted:
            self._restarted = False
            self._pending.append(Reset(None, "snapshot"))

    def _refused(self, response: httpx.Response) -> float:
        """An answer other than a stream (its body read): raise its error, or give the wait
        before trying again. Before the stream was ever open, the client's usual rules hold
        (its retries of 429 and 503); once it was, a 5xx is waited out like a drop, and a 429
        when the server asks for at most max_retry_wait seconds."""
        client = self._client
        client.rate_limit = _core.rate_limit(response)
        status = response.status_code
        wait: float | None
        if not self._opened:
            wait = client._retry.delay(response, self._failures)
        elif status >= 500 or status == 429:
            asked = _core.retry_after(response)
            if asked is None:
                wait = self._backoff() if status >= 500 else None
            elif asked <= client._retry.max_wait:
                wait = asked + random.uniform(0, min(MAX_JITTER, asked * RETRY_AFTER_JITTER))
            else:
                wait = None
        else:
            wait = None
        if wait is not None:
            self._failures += 1
            return wait
        _core.check(response, client.base_url)  # raises the error of its status
        raise UnexpectedResponse(
            f"{response.url} answered {status} in {_core.media_type(response) or 'no type'}, "
            "not with a stream of events: this server cannot watch (it does not know "
            "watch=true)",
            response,
        )

    def _lost(self, request: httpx.Request, exc: httpx.RequestError) -> float:
        """No answer to a request for the stream: before it was ever open, a NetworkError (as
        for any call); after, the wait before trying again."""
        if not self._opened:
            message = f"GET {request.url}: {_core.describe_network_error(exc)}"
            raise NetworkError(message) from exc
        wait = self._backoff()
        self._failures += 1
        return wait

    def _dropped(self) -> float:
        """The open stream broke off (or the server ended it without a cancel): the wait before
        connecting again."""
        # A block cut off goes with its connection; so does a snapshot cut off, which starts
        # again from its first key: what was given of it is to be forgotten.
        self._reader = Reader()
        if self._in_snapshot and self._snapshot_given:
            self._restarted = True
        self._snapshot_given = 0
        wait = self._backoff()
        self._failures += 1
        return wait

    def _backoff(self) -> float:
        ceiling = min(MAX_BACKOFF, 0.5 * 2 ** min(self._failures, 16))
        backoff = random.uniform(ceiling / 2, ceiling)
        hint = self._retry_hint
        return max(backoff, hint + random.uniform(0, min(MAX_JITTER, hint * RETRY_AFTER_JITTER)))

    def _take(self, message: Message, response: httpx.Response) -> None:
        """One block of the stream: an event to give, a position, or the end."""
        if message.retry is not None:
            self._retry_hint = message.retry / 1000
        if message.event == "cancel":
            reason = _reason(message.data)
            self._closed = True
            raise WatchCancelled(reason, self._position)
        position = message.id or None
        if position is not None and not _is_position(position):
            raise UnexpectedResponse(
                f"the stream gave a position that is not one: {position!r}", response
            )
        if message.data is None:
            # The opening block (or any without data) only moves the position.
            if position is not None:
                self._move(position)
            return
        live = not self._in_snapshot
        if (
            live
            and message.event != "reset"
            and position is not None
            and self._position is not None
            and int(position) <= int(self._position)
        ):
            return  # given before the connection dropped: the server sent it again
        try:
            event = event_of(message.event, position, json.loads(message.data))
        except ValueError as exc:
            message_type = message.event or "message"
            raise UnexpectedResponse(f"a {message_type} event: {exc}", response) from None
        if position is not None:
            self._move(position)
            self._in_snapshot = False
            self._snapshot_given = 0
        elif self._in_snapshot:
            self._snapshot_given += 1
        if event is not None:
            self._pending.append(event)

    def _move(self, position: str) -> None:
        if self._position is None or int(position) >= int(self._position):
            self._position = position


def _reason(data: str | None) -> str:
    try:
        reason = json.loads(data or "").get("reason")
    except (ValueError, AttributeError):
        reason = None
    return reason if isinstance(reason, str) else "cancelled"


class Watch(WatchBase):
    """The changes under a prefix of a bucket, as they happen: `Client.watch(bucket, ...)`.

    >>> with db.watch(bucket, prefix="user:") as changes:
    ...     for event in changes:  # Put, Delete or Reset, in the order of the bucket's history
    ...         print(event.position, event)

    The stream opens when the `with` block starts or at the first event asked for: a refusal
    then raises as any call does (Forbidden, NotFound, RateLimited...). Once open, a dropped
    connection, a timeout (no keep-alive for 45 s) or a 5xx is connected again with a backoff,
    from the last position: no event is given twice or left out. WatchCancelled when the server
    ends the watch for good (a token revoked, the bucket deleted...). `position` says where it
    is; `close()` ends it (iteration stops).
    """

    def __init__(
        self,
        client: BaseClient,
        http: httpx.Client,
        bucket: str,
        prefix: str = "",
        since: Position | None = None,
        snapshot: bool = False,
    ):
        super().__init__(client, bucket, prefix, since, snapshot)
        self._http = http
        self._response: httpx.Response | None = None
        self._chunks: Iterator[bytes] | None = None

    def __enter__(self) -> Watch:
        # Open, and read up to the stream's opening block: `position` is then where it starts.
        while self._position is None and not self._pending and not self._closed:
            self._ending_on_error(self._receive)
        if self._response is None and not self._closed:
            self._ending_on_error(self._connect)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Watch:
        return self

    def __next__(self) -> Event:
        while not self._pending:
            if self._closed:
                raise StopIteration
            self._ending_on_error(self._receive)
        return self._pending.popleft()

    def _ending_on_error(self, step: Callable[[], None]) -> None:
        """An error (a refusal, a cancel, a malformed stream, Ctrl-C) ends the watch."""
        try:
            step()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """End the watch and its connection."""
        self._closed = True
        self._hang_up()

    def _hang_up(self) -> None:
        response, self._response, self._chunks = self._response, None, None
        if response is not None:
            response.close()

    def _receive(self) -> None:
        response, chunks = self._response, self._chunks
        if response is None or chunks is None:
            self._connect()
            return
        try:
            chunk = next(chunks)
        except (StopIteration, httpx.RequestError, httpx.StreamError):
            if not self._closed:  # else close() was called meanwhile (from another thread)
                self._hang_up()
                self._wait = self._dropped()
            return
        for message in self._reader.feed(chunk):
            self._take(message, response)

    def _connect(self) -> None:
        while True:
            self._check_open(self._http)
            if self._wait:
                time.sleep(self._wait)
                self._wait = 0.0
            request = self._request(self._http)
            try:
                response = self._http.send(request, stream=True)
            except httpx.RequestError as exc:
                self._wait = self._lost(request, exc)
                continue
            finally:
                self._client._settings.credential.forget(request)
            if self._is_stream(response):
                self._response, self._chunks = response, response.iter_bytes()
                self._started(response)
                return
            try:
                response.read()
            except httpx.RequestError as exc:
                self._wait = self._lost(request, exc)
                continue
            finally:
                response.close()
            self._wait = self._refused(response)


class AsyncWatch(WatchBase):
    """A watch of the async client: `AsyncClient.watch(bucket, ...)`, the same as Watch with
    `async for` and `async with` (or `aclose()`).

    >>> async with adb.watch(bucket, prefix="user:") as changes:
    ...     async for event in changes:
    ...         print(event)
    """

    def __init__(
        self,
        client: BaseClient,
        http: httpx.AsyncClient,
        bucket: str,
        prefix: str = "",
        since: Position | None = None,
        snapshot: bool = False,
    ):
        super().__init__(client, bucket, prefix, since, snapshot)
        self._http = http
        self._response: httpx.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None

    async def __aenter__(self) -> AsyncWatch:
        while self._position is None and not self._pending and not self._closed:
            await self._ending_on_error(self._receive)
        if self._response is None and not self._closed:
            await self._ending_on_error(self._connect)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncWatch:
        return self

    async def __anext__(self) -> Event:
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            await self._ending_on_error(self._receive)
        return self._pending.popleft()

    async def _ending_on_error(self, step: Callable[[], Awaitable[None]]) -> None:
        """An error (a refusal, a cancel, a malformed stream, a cancelled task) ends the watch."""
        try:
            await step()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.aclose()
            raise

    async def aclose(self) -> None:
        """End the watch and its connection."""
        self._closed = True
        await self._hang_up()

    async def _hang_up(self) -> None:
        response, self._response, self._chunks = self._response, None, None
        if response is not None:
            await response.aclose()

    async def _receive(self) -> None:
        response, chunks = self._response, self._chunks
        if response is None or chunks is None:
            await self._connect()
            return
        try:
            chunk = await chunks.__anext__()
        except (StopAsyncIteration, httpx.RequestError, httpx.StreamError):
            if not self._closed:
                await self._hang_up()
                self._wait = self._dropped()
            return
        for message in self._reader.feed(chunk):
            self._take(message, response)

    async def _connect(self) -> None:
        while True:
            self._check_open(self._http)
            if self._wait:
                await anyio.sleep(self._wait)
                self._wait = 0.0
            request = self._request(self._http)
            try:
                response = await self._http.send(request, stream=True)
            except httpx.RequestError as exc:
                self._wait = self._lost(request, exc)
                continue
            finally:
                self._client._settings.credential.forget(request)
            if self._is_stream(response):
                self._response, self._chunks = response, response.aiter_bytes()
                self._started(response)
                return
            try:
                await response.aread()
            except httpx.RequestError as exc:
                self._wait = self._lost(request, exc)
                continue
            finally:
                await response.aclose()
            self._wait = self._refused(response)
