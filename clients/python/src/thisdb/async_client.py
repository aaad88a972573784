"""The asynchronous client: the same methods as Client, awaited (asyncio or trio)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import anyio
import httpx

from thisdb import _core, bulk
from thisdb._base import BaseClient
from thisdb._core import Call, Value, Version
from thisdb.bulk import ImportItem, ImportRun
from thisdb.errors import ApiError, ClientClosed, NetworkError
from thisdb.models import BucketInfo, BucketPage, Changes, Item, KeyPage
from thisdb.transaction import AsyncTransaction
from thisdb.watch import AsyncWatch, Position, changes

T = TypeVar("T")


class AsyncClient(BaseClient):
    """A ThisDB v1 API client for asyncio or trio; see Client for the arguments.

    >>> async with thisdb.AsyncClient(api_key="tdb_...", base_url="http://127.0.0.1:8000") as db:
    ...     bucket = await db.create_bucket()
    ...     await db.set(bucket, "greeting", b"hello")
    ...     async for item in db.iter_keys(bucket, values=True):
    ...         print(item.key, item.value)
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
        self._http = httpx.AsyncClient(
            headers=self._settings.headers,
            auth=self._settings.credential,
            timeout=_core.make_timeout(timeout),
            verify=verify,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def _run(self, call: Call[T]) -> T:
        return self._answered(call, await self._send(call))

    async def _send(self, call: Call[Any], stream: bool = False) -> httpx.Response:
        """Send a call, retrying as Client._send does; the last answer, unread if `stream`."""
        if self._http.is_closed:
            raise ClientClosed("the client is closed: make a new one")
        request = _core.build_request(self._http, self.base_url, call)
        attempt = 0
        while True:
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.RequestError as exc:
                raise NetworkError(self._failed(call, request, exc)) from exc
            finally:
                self._settings.credential.forget(request)
            wait = self._retry.delay(response, attempt) if call.replayable else None
            if wait is None:
                return response
            await response.aclose()
            self.rate_limit = _core.rate_limit(response)
            await anyio.sleep(wait)
            attempt += 1

    async def _open(self, call: Call[Any]) -> httpx.Response:
        """The answer to a call, its body still to be read when it is a success; see
        Client._open."""
        response = await self._send(call, stream=True)
        if response.is_success:
            self.rate_limit = _core.rate_limit(response)
            return response
        try:
            await response.aread()
        except httpx.RequestError as exc:
            raise NetworkError(self._failed(call, response.request, exc)) from exc
        finally:
            await response.aclose()
        self._answered(call, response)  # raises the error of its status
        raise AssertionError("unreachable: the answer is not a success")

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
    ) -> httpx.Response:
        """Send any request below /v1; see Client.request."""
        call = _core.raw_call(method, path, params, content, content_type)
        return await self._run(call)

    async def create_bucket(self, default_ttl: int | None = None) -> str:
        """Create a bucket and return its id; see Client.create_bucket."""
        return await self._run(_core.create_bucket(default_ttl))

    async def update_bucket(self, bucket: str, default_ttl: int) -> None:
        """Set a bucket's default ttl (seconds, 0 = never expire)."""
        await self._run(_core.update_bucket(bucket, default_ttl))

    async def delete_bucket(self, bucket: str) -> None:
        """Delete a bucket with all its keys and tokens."""
        await self._run(_core.delete_bucket(bucket))

    async def list_buckets(self, limit: int | None = None, cursor: str | None = None) -> BucketPage:
        """One page of the account's buckets; see Client.list_buckets."""
        return await self._run(_core.list_buckets(limit, cursor))

    async def iter_buckets(self, page_size: int | None = None) -> AsyncIterator[BucketInfo]:
        """Every bucket of the account, following the cursor page after page."""
        cursor: str | None = None
        while True:
            page = await self.list_buckets(page_size, cursor)
            for item in page.items:
                yield item
            if not page.next_cursor or not page.items:
                return
            cursor = page.next_cursor

    async def list_keys(
        self,
        bucket: str,
        prefix: str | None = None,
        limit: int | None = None,
        values: bool = False,
        cursor: str | None = None,
    ) -> KeyPage:
        """One page of keys; see Client.list_keys."""
        return await self._run(_core.list_keys(bucket, prefix, limit, values, cursor))

    async def iter_keys(
        self,
        bucket: str,
        prefix: str | None = None,
        values: bool = False,
        page_size: int | None = None,
    ) -> AsyncIterator[Item]:
        """Every key of a bucket (or under `prefix`), following the cursor page after page."""
        async for item in self._pages(bucket, prefix, values, page_size, None):
            yield item

    async def _pages(
        self,
        bucket: str,
        prefix: str | None,
        values: bool,
        page_size: int | None,
        cursor: str | None,
    ) -> AsyncIterator[Item]:
        """The items of the listing's pages from `cursor` on (from the first with None)."""
        while True:
            page = await self.list_keys(bucket, prefix, page_size, values, cursor)
            for item in page.items:
                yield item
            if not page.next_cursor or not page.items:
                return
            cursor = page.next_cursor

    async def export(self, bucket: str, prefix: str | None = None) -> AsyncIterator[Item]:
        """Every key of a bucket (or under `prefix`) with its value, ttl and version, in key
        order, in one streamed answer; see Client.export. `async for item in db.export(...)`."""
        call = bulk.export_call(bucket, prefix)
        response = await self._open(call)
        try:
            if bulk.is_whole_export(response):
                lines = bulk.Lines()
                async for chunk in self._chunks(call, response):
                    for line in lines.feed(chunk):
                        yield bulk.exported_item(line, response)
                for line in lines.end():
                    yield bulk.exported_item(line, response)
                return
            # An older server's answer: one page (at most 1000 keys), read whole.
            page = bulk.first_page(
                b"".join([c async for c in self._chunks(call, response)]), response
            )
        finally:
            await response.aclose()
        for item in page.items:
            yield item
        if page.next_cursor and page.items:
            async for item in self._pages(bucket, prefix, True, None, page.next_cursor):
                yield item

    async def _chunks(self, call: Call[Any], response: httpx.Response) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_bytes():
                yield chunk
        except httpx.RequestError as exc:
            raise NetworkError(self._failed(call, response.request, exc)) from exc

    async def import_items(
        self,
        bucket: str,
        items: Iterable[ImportItem] | AsyncIterable[ImportItem],
        on_applied: Callable[[int], None] | None = None,
    ) -> int:
        """Write the items (an iterable or an async iterable) into a bucket in one streamed
        request and return how many were imported; see Client.import_items."""
        run = ImportRun(bucket, on_applied)
        entries = run.aentries(items)
        if self._bulk_import is False:
            return await self._import_each(run, entries)
        if self._bulk_import is None:
            first = await run.aprobe(entries)
            if not first:
                return run.finish()
            if not await self._import_bulk(run, run.body(first), may_fall_back=True):
                self._bulk_import = False
                return await self._import_each(run, run.prepend(first, entries))
            self._bulk_import = True
        following = await anext(entries, None)
        if following is not None:
            rest = run.achunks(run.prepend([following], entries))
            await self._import_bulk(run, rest, may_fall_back=False)
        return run.finish()

    async def _import_bulk(self, run: ImportRun, body: _core.Body, may_fall_back: bool) -> bool:
        """One NDJSON request; False when the server does not take them (nothing applied)."""
        try:
            run.imported(await self._run(run.call(body)))
        except ApiError as exc:
            run.refused(exc, may_fall_back)
            return False
        except NetworkError as exc:
            raise run.stopped(exc) from exc
        return True

    async def _import_each(self, run: ImportRun, entries: AsyncIterator[bulk.Entry]) -> int:
        """The per-key path: one write a key."""
        async for entry in entries:
            try:
                await self.set(run.bucket, entry.key, entry.content(), entry.ttl)
            except (ApiError, NetworkError) as exc:
                raise run.stopped(exc) from exc
            run.imported(1)
        return run.finish()

    async def get(self, bucket: str, key: str) -> bytes:
        """A key's value, byte for byte; NotFound if it does not exist or has expired."""
        return await self._run(_core.get(bucket, key))

    async def get_versioned(self, bucket: str, key: str) -> tuple[bytes, str]:
        """A key's value and its version; see Client.get_versioned."""
        return await self._run(_core.get_versioned(bucket, key))

    async def get_if_changed(
        self, bucket: str, key: str, version: Version
    ) -> tuple[bytes, str] | None:
        """The value and version if the key is no longer at `version`, else None; see
        Client.get_if_changed."""
        return await self._run(_core.get_if_changed(bucket, key, version))

    async def get_json(self, bucket: str, key: str) -> Any:
        """A key's value decoded as JSON; NotJSON if it is not JSON."""
        return _core.loads_json(await self.get(bucket, key))

    async def set(
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
        """Store `value` under `key`, on a condition if given; see Client.set."""
        condition = _core.conditions(if_version, if_absent, if_exists)
        await self._run(_core.set(bucket, key, value, ttl, condition))

    async def set_versioned(
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
        return await self._run(_core.set_versioned(bucket, key, value, ttl, condition))

    async def set_json(
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
        """Store `obj` as compact UTF-8 JSON; InvalidArgument for NaN or Infinity."""
        value = _core.dumps_json(obj)
        await self.set(
            bucket, key, value, ttl, if_version=if_version, if_absent=if_absent, if_exists=if_exists
        )

    async def increment(
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
        """Add `by` to a key atomically and return the new value; see Client.increment."""
        condition = _core.conditions(if_version, if_absent, if_exists)
        return await self._run(_core.increment(bucket, key, by, ttl, condition))

    async def increment_versioned(
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
        return await self._run(_core.increment_versioned(bucket, key, by, ttl, condition))

    async def delete(
        self, bucket: str, key: str, *, if_version: Version | Iterable[Version] | None = None
    ) -> None:
        """Delete a key, on a condition if given; see Client.delete."""
        await self._run(_core.delete(bucket, key, _core.conditions(if_version)))

    def transaction(self, bucket: str) -> AsyncTransaction:
        """A transaction on `bucket`; see Transaction (here `await tx.commit()`, `async with`)."""
        return AsyncTransaction(bucket, self._run)

    # --- watching --------------------------------------------------------------------------

    def watch(
        self, bucket: str, prefix: str = "", since: Position | None = None, snapshot: bool = False
    ) -> AsyncWatch:
        """The changes to the keys under `prefix` as they happen; see Client.watch. Use it with
        `async with` (or call `aclose()`), and `async for event in ...`."""
        return AsyncWatch(self, self._http, bucket, prefix, since, snapshot)

    async def changes(
        self, bucket: str, prefix: str = "", since: Position | None = None, wait: int = 30
    ) -> Changes:
        """The changes after `since`, as soon as there are some or after `wait` seconds; see
        Client.changes."""
        return await self._run(changes(bucket, prefix, since, wait))

    async def create_token(
        self, bucket: str, prefix: str, permissions: str | Iterable[str], ttl: int
    ) -> str:
        """A token for the keys of `bucket` under `prefix`; see Client.create_token."""
        return await self._run(_core.create_token(bucket, prefix, permissions, ttl))
