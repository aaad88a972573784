"""A bucket out and in at any size: `export` (one streamed `GET ...&all=true`) and
`import_items` (one streamed NDJSON `POST /v1/<bucket>`), and their fallbacks against servers
without these routes (paging the listing; one write per key).

Both clients share everything here but how they send and wait, as the watches do: what to ask
for, how to read an answer, the items of an import as NDJSON lines, where an import stopped.

An import first sends a small batch of its items (IMPORT_PROBE_LINES) when the client does not
know the server yet: a server with the route imports it, an older one answers 400 without a
"line" (it read the body as a transaction, and applied nothing) or 405, and the client then
writes that batch and the rest one key at a time. The rest goes as one streamed request (chunked,
in constant memory): it cannot be sent again, so an error stops the import with ImportStopped
saying how far it got.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from thisdb import _core
from thisdb._core import Call, Value, segment
from thisdb.errors import (
    ApiError,
    ImportStopped,
    InvalidArgument,
    ThisDBError,
    UnexpectedResponse,
    reason_phrase,
)
from thisdb.models import Item, KeyPage

NDJSON = "application/x-ndjson"
EXPORT_HEADER = "X-Thisdb-Export"  # "all": the answer is the whole export, not one page
# The first request of an import to a server not yet known to take NDJSON: at most this many
# lines (one request as the server counts imports, one per 100 lines) and about this many bytes
# (at least one line), held in memory to be written key by key if the server is an older one;
# far below the body limit of its transactions (10 MiB on this platform).
IMPORT_PROBE_LINES = 100
IMPORT_PROBE_BYTES = 1 << 20
# A streamed import is sent in chunks of about this size: fewer, larger writes than one a line.
IMPORT_CHUNK_BYTES = 64 * 1024

# What import_items takes, each a key with its value (bytes, or str sent as UTF-8 text) and
# optionally a ttl (seconds, 0: never expires; None or absent: the bucket's default):
# - an Item (what export and iter_keys give, so an export imports as it is);
# - a mapping in the shape of an NDJSON line: {"key", "value", "encoding"?: "base64", "ttl"?};
# - a tuple (key, value) or (key, value, ttl).
ImportItem = Item | Mapping[str, Any] | tuple[str, Value] | tuple[str, Value, int | None]


# --- export ----------------------------------------------------------------------------------


def export_call(bucket: str, prefix: str | None) -> Call[httpx.Response]:
    params = {"format": "ndjson", "values": "true", "all": "true"}
    if prefix:
        params["prefix"] = prefix
    return Call("GET", "/" + segment(bucket, "bucket"), _core.raw, params=params)


def is_whole_export(response: httpx.Response) -> bool:
    """The server streams every key in this answer; else (an older server, which ignores
    all=true) it is one page of the listing, with the cursor of the next."""
    said: str = response.headers.get(EXPORT_HEADER, "")
    return said.strip().lower() == "all"


class Lines:
    """The lines of an NDJSON body, fed its bytes as they come. Lines end with LF only: JSON
    escapes every other line break inside its strings, so a key or value never splits one."""

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()
        return [line for line in lines if line.strip()]

    def end(self) -> list[bytes]:
        rest, self._rest = self._rest, b""
        return [rest] if rest.strip() else []


def exported_item(line: bytes, response: httpx.Response) -> Item:
    """One line of an export (or of the NDJSON listing): {"key", "value", "encoding"?, "ttl",
    "version"}."""
    try:
        entry = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        message = f"a line of the export is not JSON: {line[:200]!r}"
        raise UnexpectedResponse(message, response) from None
    return _core.listed_item(entry, response)


def first_page(body: bytes, response: httpx.Response) -> KeyPage:
    """An older server's answer to an export: one page of the NDJSON listing (read whole: at
    most 1000 keys), its cursor in X-Next-Cursor."""
    lines = Lines()
    items = [exported_item(line, response) for line in [*lines.feed(body), *lines.end()]]
    cursor = response.headers.get("X-Next-Cursor") or None
    return KeyPage(items, cursor)


# --- import: the items as lines ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One item of an import, checked: its key, value (str: text as it is) and ttl."""

    key: str
    value: bytes | str
    ttl: int | None

    def line(self) -> bytes:
        """The item as a line of the NDJSON body: text values as they are, others in base64."""
        if isinstance(self.value, str):
            record: dict[str, Any] = {"key": self.key, "value": self.value}
        else:
            record = {"key": self.key, **_core.encode_value(self.value)}
        if self.ttl is not None:
            record["ttl"] = self.ttl
        return _core.dumps_json(record) + b"\n"

    def content(self) -> bytes:
        return _core.to_bytes(self.value)


def entry_of(item: Any) -> Entry:
    """An item of import_items checked; TypeError or ValueError saying what is wrong."""
    key: Any
    value: Any
    ttl: Any
    if isinstance(item, Item):
        if item.value is None:
            raise ValueError(f"the item of key {item.key!r} has no value (listed without values)")
        key, value, ttl = item.key, item.value, item.ttl
    elif isinstance(item, Mapping):
        key, ttl = item.get("key"), item.get("ttl")
        if "value" not in item:
            raise ValueError(f"the item of key {key!r} has no value")
        value = item["value"]
        encoding = item.get("encoding")
        if encoding == "base64" and isinstance(value, str):
            value = _core.decode_value(item)  # ValueError when it is not base64
        elif encoding is not None:
            raise ValueError(f'encoding must be "base64" (or left out), not {encoding!r}')
    elif isinstance(item, tuple) and len(item) in (2, 3):
        key, value, ttl = (*item, None) if len(item) == 2 else item
    else:
        raise TypeError(
            "an item is an Item, a dict {key, value[, encoding][, ttl]} or a tuple "
            f"(key, value[, ttl]), not {type(item).__name__}"
        )
    if not isinstance(key, str) or not key:
        raise ValueError(f"the key must be a non-empty str, not {key!r}")
    if isinstance(value, bytearray | memoryview):
        value = bytes(value)
    if not isinstance(value, bytes | str):
        raise TypeError(f"the value of {key!r} must be bytes or str, not {type(value).__name__}")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0):
        raise ValueError(f"the ttl of {key!r} must be a whole number of seconds >= 0, not {ttl!r}")
    return Entry(key, value, ttl)


# --- import: one run ---------------------------------------------------------------------------

# An import's refusal names the line at fault and what was applied before it:
# "line N: <why>; lines 1 to N-1 were applied".
_LINE_MESSAGE = re.compile(r"line \d+: (?P<why>.*?)(?:; lines? 1 to \d+ (?:was|were) applied)?")


class ImportRun:
    """One call of import_items: its items taken one by one and checked, how far it got, and
    what each answer means. `applied` counts the items known to be imported."""

    def __init__(self, bucket: str, on_applied: Callable[[int], None] | None = None):
        self.bucket = bucket
        self.on_applied = on_applied
        self.path = "/" + segment(bucket, "bucket")
        self.taken = 0  # items taken from the iterable, each checked
        self.applied = 0
        self.exhausted = False
        # The first item that cannot be sent, with its number: the import stops before it.
        self.invalid: tuple[int, Exception] | None = None

    def entry(self, item: Any) -> Entry | None:
        """The next item checked, or None when it cannot be sent (kept in `invalid`)."""
        try:
            entry = entry_of(item)
        except (TypeError, ValueError) as exc:
            self.invalid = (self.taken + 1, exc)
            self.exhausted = True
            return None
        self.taken += 1
        return entry

    def entries(self, items: Iterable[Any]) -> Iterator[Entry]:
        for item in items:
            entry = self.entry(item)
            if entry is None:
                return
            yield entry
        self.exhausted = True

    async def aentries(self, items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Entry]:
        if isinstance(items, AsyncIterable):
            async for item in items:
                entry = self.entry(item)
                if entry is None:
                    return
                yield entry
        else:
            for item in items:
                entry = self.entry(item)
                if entry is None:
                    return
                yield entry
        self.exhausted = True

    def probe(self, entries: Iterator[Entry]) -> list[Entry]:
        """The first batch, sent alone to a server not yet known to take NDJSON imports."""
        batch: list[Entry] = []
        size = 0
        while len(batch) < IMPORT_PROBE_LINES and size < IMPORT_PROBE_BYTES:
            entry = next(entries, None)
            if entry is None:
                break
            batch.append(entry)
            size += len(entry.key) + len(entry.value)
        return batch

    async def aprobe(self, entries: AsyncIterator[Entry]) -> list[Entry]:
        batch: list[Entry] = []
        size = 0
        while len(batch) < IMPORT_PROBE_LINES and size < IMPORT_PROBE_BYTES:
            entry = await anext(entries, None)
            if entry is None:
                break
            batch.append(entry)
            size += len(entry.key) + len(entry.value)
        return batch

    @staticmethod
    async def prepend(entries: list[Entry], rest: AsyncIterator[Entry]) -> AsyncIterator[Entry]:
        for entry in entries:
            yield entry
        async for entry in rest:
            yield entry

    @staticmethod
    def body(entries: list[Entry]) -> bytes:
        return b"".join(entry.line() for entry in entries)

    @staticmethod
    def chunks(entries: Iterator[Entry]) -> Iterator[bytes]:
        """The lines of the entries in chunks of about IMPORT_CHUNK_BYTES, as they are taken."""
        chunk: list[bytes] = []
        size = 0
        for entry in entries:
            line = entry.line()
            chunk.append(line)
            size += len(line)
            if size >= IMPORT_CHUNK_BYTES:
                yield b"".join(chunk)
                chunk, size = [], 0
        if chunk:
            yield b"".join(chunk)

    @staticmethod
    async def achunks(entries: AsyncIterator[Entry]) -> AsyncIterator[bytes]:
        chunk: list[bytes] = []
        size = 0
        async for entry in entries:
            line = entry.line()
            chunk.append(line)
            size += len(line)
            if size >= IMPORT_CHUNK_BYTES:
                yield b"".join(chunk)
                chunk, size = [], 0
        if chunk:
            yield b"".join(chunk)

    def call(self, body: _core.Body) -> Call[int]:
        return Call(
            "POST",
            self.path,
            _imported,
            params={"format": "json"},
            body=body,
            content_type=NDJSON,
            headers={"Accept": "application/json"},
        )

    def imported(self, count: int) -> None:
        self.applied += count
        if self.on_applied is not None:
            self.on_applied(self.applied)

    def refused(self, exc: ApiError, may_fall_back: bool) -> None:
        """A refusal of a bulk request. Returns when the server is an older one that does not
        take NDJSON imports (and nothing was applied), if the caller can still write the items
        one by one; else raises ImportStopped, the lines it names counted from the whole
        import's first."""
        line, applied = _line_fields(exc.response)
        if line is None and may_fall_back and _older_server(exc):
            return
        offset = self.applied
        if line is None:
            raise ImportStopped(exc, offset + 1, offset) from exc
        if offset:
            # The server counts the lines of this request; the caller, those of the whole import.
            exc = _renumbered(exc, offset + line, offset + applied)
        raise ImportStopped(exc, offset + line, offset + applied) from exc

    def stopped(self, exc: ThisDBError) -> ImportStopped:
        """An error with no line named (a write of the per-key path, a network error): the
        import stopped after the items known to be applied."""
        return ImportStopped(exc, self.applied + 1, self.applied)

    def finish(self) -> int:
        """The number imported; ImportStopped when an item could not be sent."""
        if self.invalid is not None:
            number, exc = self.invalid
            error = InvalidArgument(f"item {number}: {exc}")
            raise ImportStopped(error, number, self.applied) from exc
        return self.applied


def _imported(response: httpx.Response) -> int:
    data = _core._json(response)
    count = data.get("imported") if isinstance(data, dict) else None
    if isinstance(count, bool) or not isinstance(count, int):
        raise UnexpectedResponse('expected {"imported": n}', response)
    return count


def _line_fields(response: httpx.Response | None) -> tuple[int | None, int]:
    """The "line" and "applied" of a refusal of an import (None, 0 without them)."""
    try:
        data = response.json() if response is not None else None
    except (ValueError, UnicodeDecodeError):
        data = None
    line = data.get("line") if isinstance(data, dict) else None
    if isinstance(line, bool) or not isinstance(line, int) or line < 1:
        return None, 0
    applied = data.get("applied") if isinstance(data, dict) else None
    if isinstance(applied, bool) or not isinstance(applied, int) or applied < 0:
        applied = line - 1
    return line, applied


def _older_server(exc: ApiError) -> bool:
    """A server without NDJSON imports: 400 (it read the body as a transaction, which it is
    not: nothing applied), 405 (no POST on a bucket), 413 (larger than its transactions) or
    415, none naming a line."""
    return exc.status in (400, 405, 413, 415)


def _renumbered(exc: ApiError, line: int, applied: int) -> ApiError:
    """The same error, its message counting lines from the whole import's first."""
    match = _LINE_MESSAGE.fullmatch(exc.message)
    why = match["why"] if match else exc.message
    before = f"lines 1 to {applied} were applied" if applied else "no line was applied"
    message = f"line {line}: {why}; {before}"
    renumbered = copy.copy(exc)
    renumbered.message = message
    renumbered.args = (f"{exc.status} {reason_phrase(exc.status)}: {message}",)
    return renumbered
