"""The synchronous client."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import chain
from types import TracebackType
from typing import Any, TypeVar

import httpx

from thisdb import _core, bulk
from thisdb._base import BaseClient
from thisdb._core import Call, Value, Version
from thisdb.bulk import ImportItem, ImportRun
from thisdb.errors import ApiError, ClientClosed, NetworkError
from thisdb.models import BucketInfo, BucketPage, Changes, Item, KeyPage
from thisdb.transaction import Transaction
from thisdb.watch import Position, Watch, changes

T = TypeVar("T")


class Client(BaseClient):
    """A ThisDB v1 API client over one pool of keep-alive connections.

    >>> with thisdb.Client(api_key="tdb_...", base_url="http://127.0.0.1:8000") as db:
    ...     bucket = db.create_bucket()
    ...     db.set(bucket, "greeting", b"hello")
    ...     db.get(bucket, "greeting")
    b'hello'

    `api_key` or `token` (else THISDB_API_KEY or THISDB_TOKEN) and `base_url` (else
    THISDB_URL): `http://host`, `http://host/` and `http://host/v1` all work. `retries` > 0
    retries answers 429 and 503 after the wait Retry-After asks for, when that wait is at most
    `max_retry_wait` seconds.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        token: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        retries: int = 0,
        max_retry_wait: float = 60.0,
        verify: bool | ssl.SSLContext = True,
    ):
        super().__init__(api_key, token, base_url, retries, max_retry_wait)
        self._http = httpx.Client(
            headers=self._settings.headers,
            auth=self._settings.credential,
            timeout=_core.make_timeout(timeout),
            verify=verify,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def _run(self, call: Call[T]) -> T:
        return self._answered(call, self._send(call))

    def _send(self, call: Call[Any], stream: bool = False) -> httpx.Response:
        """Send a call, retrying 429 and 503 as the retry rule says (unless its body is a
        stream, which can be sent once only); the last answer, its body unread if `stream`."""
        if self._http.is_closed:
            raise ClientClosed("the client is closed: make a new one")
        request = _core.build_request(self._http, self.base_url, call)
        attempt = 0
        while True:
            try:
                response = self._http.send(request, stream=stream)
            except httpx.RequestError as exc:
                raise NetworkError(self._failed(call, request, exc)) from exc
            finally:
                self._settings.credential.forget(request)
            wait = self._retry.delay(response, attempt) if call.replayable else None
            if wait is None:
                return response
            response.close()
            self.rate_limit = _core.rate_limit(response)
            time.sleep(wait)
            attempt += 1

    def _open(self, call: Call[Any]) -> httpx.Response:
        """The answer to a call, its body still to be read when it is a success; an error's
        body is read and raised as _run does."""
        response = self._send(call, stream=True)
        if response.is_success:
            self.rate_limit = _core.rate_limit(response)
            return response
        try:
            response.read()
        except httpx.RequestError as exc:
            raise NetworkError(self._failed(call, response.request, exc)) from exc
        finally:
            response.close()
        self._answered(call, response)  # raises the error of its status
        raise AssertionError("unreachable: the answer is not a success")

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
    ) -> httpx.Response:
        """Send any request below /v1 (`path` as it goes on the wire, e.g. "/tokens") with the
        client's credentials; returns the response of a success, raises as the methods do."""
        call = _core.raw_call(method, path, params, content, content_type)
        return self._run(call)

    # --- buckets ---------------------------------------------------------------------------

    def create_bucket(self, default_ttl: int | None = None) -> str:
        """Create a bucket and return its id. `default_ttl` in seconds, 0 = keys never expire
        (the server's default is 604800, 7 days)."""
        return self._run(_core.create_bucket(default_ttl))

    def update_bucket(self, bucket: str, default_ttl: int) -> None:
        """Set a bucket's default ttl (seconds, 0 = never expire)."""
        self._run(_core.update_bucket(bucket, default_ttl))

    def delete_bucket(self, bucket: str) -> None:
        """Delete a bucket with all its keys and tokens."""
        self._run(_core.delete_bucket(bucket))

    def list_buckets(self, limit: int | None = None, cursor: str | None = None) -> BucketPage:
        """One page of the account's buckets (at most `limit`, the server's maximum is 1000)
        in id order, each with its default ttl, keys and bytes; pass the page's `next_cursor`
        as `cursor` for the next. Takes an API key (a token gets Forbidden); a server that
        speaks only the published v1 API cannot list buckets and answers MethodNotAllowed."""
        return self._run(_core.list_buckets(limit, cursor))

    def iter_buckets(self, page_size: int | None = None) -> Iterator[BucketInfo]:
        """Every bucket of the account, following the cursor page after page."""
        cursor: str | None = None
        while True:
            page = self.list_buckets(page_size, cursor)
            yield from page.items
            if not page.next_cursor or not page.items:
                return
            cursor = page.next_cursor

    def list_keys(
        self,
        bucket: str,
        prefix: str | None = None,
        limit: int | None = None,
        values: bool = False,
        cursor: str | None = None,
    ) -> KeyPage:
        """One page of keys (at most `limit`, the server's maximum is 1000) in byte order, with
        their values if `values`; pass the page's `next_cursor` as `cursor` for the next."""
        return self._run(_core.list_keys(bucket, prefix, limit, values, cursor))

    def iter_keys(
        self,
        bucket: str,
        prefix: str | None = None,
        values: bool = False,
        page_size: int | None = None,
    ) -> Iterator[Item]:
        """Every key of a bucket (or under `prefix`), following the cursor page after page."""
        yield from self._pages(bucket, prefix, values, page_size, None)

    def _pages(
        self,
        bucket: str,
        prefix: str | None,
        values: bool,
        page_size: int | None,
        cursor: str | None,
    ) -> Iterator[Item]:
        """The items of the listing's pages from `cursor` on (from the first with None)."""
        while True:
            page = self.list_keys(bucket, prefix, page_size, values, cursor)
            yield from page.items
            if not page.next_cursor or not page.items:
                return
            cursor = page.next_cursor

    # --- bulk --------------------------------------------------------------------------------

    def export(self, bucket: str, prefix: str | None = None) -> Iterator[Item]:
        """Every key of a bucket (or under `prefix`) with its value, ttl and version, in key
        order, as the server reads them (the request is sent at the first item asked for).

        One streamed answer, from one snapshot of the bucket, in constant memory; a server
        without it (an older one) answers one page of the listing, and the rest is read page
        by page (then not a snapshot: keys written meanwhile may or may not be in it)."""
        call = bulk.export_call(bucket, prefix)
        response = self._open(call)
        try:
            if bulk.is_whole_export(response):
                lines = bulk.Lines()
                for chunk in self._chunks(call, response):
                    for line in lines.feed(chunk):
                        yield bulk.exported_item(line, response)
                for line in lines.end():
                    yield bulk.exported_item(line, response)
                return
            # An older server's answer: one page (at most 1000 keys), read whole.
            page = bulk.first_page(b"".join(self._chunks(call, response)), response)
        finally:
            response.close()
        yield from page.items
        if page.next_cursor and page.items:
            yield from self._pages(bucket, prefix, True, None, page.next_cursor)

    def _chunks(self, call: Call[Any], response: httpx.Response) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes()
        except httpx.RequestError as exc:
            raise NetworkError(self._failed(call, response.request, exc)) from exc

    def import_items(
        self,
        bucket: str,
        items: Iterable[ImportItem],
        on_applied: Callable[[int], None] | None = None,
    ) -> int:
        """Write the items into a bucket, in one streamed request (constant memory whatever
        their number); returns how many were imported.

        Each item is an Item (what export gives), a dict {"key", "value", "encoding"?,
        "ttl"?} (the shape of an export's lines; "encoding": "base64" for a value in base64)
        or a tuple (key, value) or (key, value, ttl); a value is bytes, or str sent as UTF-8,
        a ttl seconds (0: never expires; None or absent: the bucket's default).

        ImportStopped when it stops before the end: the server refused an item (a bad line,
        out of requests, a token outside its prefix), an item cannot be sent, or the
        connection broke; it says how many were imported (`applied`) and where it stopped
        (`line`, the item's number from 1). A server without NDJSON imports (an older one)
        gets one write per key (the client's retries apply to each).

        `on_applied(n)` is called each time the count of items known to be imported grows
        (after each write of the per-key path; after each request of the bulk one), e.g. to
        know where to go on after an interruption."""
        run = ImportRun(bucket, on_applied)
        entries = run.entries(items)
        if self._bulk_import is False:
            return self._import_each(run, entries)
        if self._bulk_import is None:
            first = run.probe(entries)
            if not first:
                return run.finish()
            if not self._import_bulk(run, run.body(first), may_fall_back=True):
                self._bulk_import = False
                return self._import_each(run, chain(first, entries))
            self._bulk_import = True
        following = next(entries, None)
        if following is not None:
            rest = run.chunks(chain([following], entries))
            self._import_bulk(run, rest, may_fall_back=False)
        return run.finish()

    def _import_bulk(self, run: ImportRun, body: _core.Body, may_fall_back: bool) -> bool:
        """One NDJSON request; False when the server does not take them (nothing applied)."""
        try:
            run.imported(self._run(run.call(body)))
        except ApiError as exc:
            run.refused(exc, may_fall_back)
            return False
        except NetworkError as exc:
            raise run.stopped(exc) from exc
        return True

    def _import_each(self, run: ImportRun, entries: Iterable[bulk.Entry]) -> int:
        """The per-key path: one write a key."""
        for entry in entries:
            try:
                self.set(run.bucket, entry.key, entry.content(), entry.ttl)
            except (ApiError, NetworkError) as exc:
                raise run.stopped(exc) from exc
            run.imported(1)
        return run.finish()

    # --- keys --------------------------------------------------------------------------------

    def get(self, bucket: str, key: str) -> bytes:
        """A key's value, byte for byte; NotFound if it does not exist or has expired."""
        return self._run(_core.get(bucket, key))

    def get_versioned(self, bucket: str, key: str) -> tuple[bytes, str]:
        """A key's value and its version (from the ETag), for a conditional write after it."""
        return self._run(_core.get_versioned(bucket, key))

    def get_if_changed(self, bucket: str, key: str, version: Version) -> tuple[bytes, str] | None:
        """The value and version of a key if it is no longer at `version`, else None (the
        server answered 304 and sent no value); NotFound if the key does not exist."""
        return self._run(_core.get_if_changed(bucket, key, version))

    def get_json(self, bucket: str, key: str) -> Any:
        """A key's value decoded as JSON; NotJSON if it is not JSON."""
        return _core.loads_json(self.get(bucket, key))

    def set(
        self,
        bucket: str,
        key: str,
        value: Value,
        ttl: int | None = None,
        *,
        if_version: Version | Iterable[Version] | None = None,
        if_absent: bool = False,
        if_exists: bool = False,
    ) -> None:
        """Store `value` (bytes, or str as UTF-8) under `key`; `ttl` in seconds (0 = never
        expire, None = the bucket's default).

        At most one condition: `if_version` (the key must be at this version, or at one of
        these), `if_absent` (it must not exist: create only), `if_exists` (it must exist).
        When it does not hold, nothing is written and PreconditionFailed says the key's
        current version."""
        condition = _core.conditions(if_version, if_absent, if_exists)
        self._run(_core.set(bucket, key, value, ttl, condition))

    def set_versioned(
        self,
        bucket: str,
        key: str,
        value: Value,
        ttl: int | None = None,
        *,
        if_version: Version | Iterable[Version] | None = None,
        if_absent: bool = False,
        if_exists: bool = False,
    ) -> str:
        """The same as set(), and returns the key's new version."""
        condition = _core.conditions(if_version, if_absent, if_exists)
        return self._run(_core.set_versioned(bucket, key, value, ttl, condition))

    def set_json(
        self,
        bucket: str,
        key: str,
        obj: Any,
        ttl: int | None = None,
        *,
        if_version: Version | Iterable[Version] | None = None,
        if_absent: bool = False,
        if_exists: bool = False,
    ) -> None:
        """Store `obj` as compact UTF-8 JSON; InvalidArgument for NaN or Infinity (not JSON).
        The conditions are set()'s."""
        value = _core.dumps_json(obj)
        self.set(
            bucket, key, value, ttl, if_version=if_version, if_absent=if_absent, if_exists=if_exists
        )

    def increment(
        self,
        bucket: str,
        key: str,
        by: int = 1,
        ttl: int | None = None,
        *,
        if_version: Version | Iterable[Version] | None = None,
        if_absent: bool = False,
        if_exists: bool = False,
    ) -> int:
        """Add `by` (negative to decrement) to a key holding an integer, atomically; an absent
        key counts from 0. Returns the new value. The conditions are set()'s."""
        condition = _core.conditions(if_version, if_absent, if_exists)
        return self._run(_core.increment(bucket, key, by, ttl, condition))

    def increment_versioned(
        self,
        bucket: str,
        key: str,
        by: int = 1,
        ttl: int | None = None,
        *,
        if_version: Version | Iterable[Version] | None = None,
        if_absent: bool = False,
        if_exists: bool = False,
    ) -> tuple[int, str]:
        """The same as increment(), and returns the new value and the key's new version."""
        condition = _core.conditions(if_version, if_absent, if_exists)
        return self._run(_core.increment_versioned(bucket, key, by, ttl, condition))

    def delete(
        self, bucket: str, key: str, *, if_version: Version | Iterable[Version] | None = None
    ) -> None:
        """Delete a key; NotFound if it does not exist. With `if_version`, only if the key is
        at this version (or one of these), else PreconditionFailed."""
        self._run(_core.delete(bucket, key, _core.conditions(if_version)))

    def transaction(self, bucket: str) -> Transaction:
        """A transaction on `bucket`: checks and operations applied all or none; see
        Transaction."""
        return Transaction(bucket, self._run)

    # --- watching ----------------------------------------------------------------------------

    def watch(
        self, bucket: str, prefix: str = "", since: Position | None = None, snapshot: bool = False
    ) -> Watch:
        """The changes to the keys under `prefix` as they happen, one event at a time (Put,
        Delete, Reset), over one long request (Server-Sent Events).

        `since`: start after this position (a `position` kept from an earlier watch or event);
        else from now. `snapshot`: first a Put of every key under the prefix as it is now. The
        stream opens at the start of a `with` block or at the first event asked for; once open
        it connects again by itself after a drop, from the last position. See Watch.
        """
        return Watch(self, self._http, bucket, prefix, since, snapshot)

    def changes(
        self, bucket: str, prefix: str = "", since: Position | None = None, wait: int = 30
    ) -> Changes:
        """The changes under `prefix` after position `since` (a long-poll): the server answers
        as soon as there are some, or after `wait` seconds (0 to 60) with none. Ask again from
        the answer's `next`."""
        return self._run(changes(bucket, prefix, since, wait))

    # --- tokens ------------------------------------------------------------------------------

    def create_token(
        self, bucket: str, prefix: str, permissions: str | Iterable[str], ttl: int
    ) -> str:
        """A token giving `permissions` ("read", "write" or both) on the keys of `bucket`
        starting with `prefix` ("" for all), for `ttl` seconds (at most 86400)."""
        return self._run(_core.create_token(bucket, prefix, permissions, ttl))
