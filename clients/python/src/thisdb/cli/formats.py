"""What `thisdb import` reads (`--from`), each record turned into the shape of a line of an
export, {"key", "value", "encoding"?: "base64", "ttl"?} (what the server's import takes):

- ndjson (the default): an export of this tool or of the API, one record a line, as it is.
- workers-kv: Cloudflare Workers KV's bulk format, a JSON array of {"key", "value",
  "expiration_ttl"?, "expiration"?, "base64"?, "metadata"?}: a value in base64 when "base64" is
  true; "expiration_ttl" is the ttl, else "expiration" (Unix time) gives what is left of it (a
  key already expired is skipped); "metadata" is not kept (ThisDB keeps none).
- consul: `consul kv export`, a JSON array of {"key", "flags", "value"} with values in base64:
  sent as text when they are UTF-8, else in base64; "flags" is not kept.
- kvdb: a kvdb.io listing with values, as `GET /<bucket>/?values=true` gives it: either its
  JSON, an array of [key, value] pairs (`&format=json`), or its text, one `key=value` a line
  (split at the first "=", so a key holding "=" cannot come this way: use the JSON). Which of
  the two is told by the first character: "[" is JSON.

Records are numbered from 1 (lines, or entries of an array); the first `skip` are passed over
(not even read as JSON when they are lines). These are pure functions of the bytes read, in
constant memory: an array is read one entry at a time.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import io
import json
import math
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

FORMATS = ("ndjson", "workers-kv", "consul", "kvdb")
Record = dict[str, Any]
# An entry of a JSON array may span this many characters at most (a 1 MiB value in base64 and
# its key, with room to spare): past it a malformed entry is reported instead of reading on.
MAX_ENTRY_CHARS = 4 << 20
READ_SIZE = 1 << 16  # bytes read at a time from an array's file
_NUMBER_CHARACTERS = "0123456789+-.eE"
# A record whose key expired before the import (Workers KV's "expiration" in the past).
EXPIRED = "expired"


class BadRecord(ValueError):
    """A record that cannot be imported, with its number (a line, or an entry of an array)."""

    def __init__(self, number: int, message: str, unit: str = "line"):
        super().__init__(f"{unit} {number}: {message}")
        self.number = number


def unit(source: str) -> str:
    """What a record is called in messages: a line of NDJSON or text, an entry of an array."""
    return "line" if source == "ndjson" else "record"


def records(stream: IO[bytes], source: str, skip: int = 0) -> Iterator[tuple[int, Record | None]]:
    """(number, record) for each record of the input after the first `skip`; the record is
    None for a blank line (skipped, but counted) and EXPIRED-marked for an expired one."""
    if source == "ndjson":
        yield from _lines(stream, skip, _ndjson_line)
        return
    if source == "kvdb":
        read, first = _first_character(stream)
        if first != b"[":
            yield from _lines(_Prepended(read, stream), skip, kvdb_line)
            return
        stream = _Prepended(read, stream)  # type: ignore[assignment]
    convert = {"workers-kv": workers_kv, "consul": consul, "kvdb": kvdb_pair}[source]
    chunks = iter(lambda: stream.read(READ_SIZE), b"")
    for number, entry in enumerate(json_array(chunks), 1):
        if number > skip:
            try:
                yield number, convert(entry)
            except ValueError as exc:
                raise BadRecord(number, str(exc), "record") from None


def _lines(stream: Iterable[bytes], skip: int, convert: Any) -> Iterator[tuple[int, Record | None]]:
    for number, line in enumerate(stream, 1):
        if number <= skip:
            continue
        if not line.strip():
            yield number, None
            continue
        try:
            yield number, convert(line)
        except ValueError as exc:
            raise BadRecord(number, str(exc)) from None


def _ndjson_line(line: bytes) -> Record:
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not JSON") from None
    if not isinstance(record, dict):
        raise ValueError('expected {"key": ..., "value": ...}')
    return record


# --- the formats of other stores ---------------------------------------------------------------


def workers_kv(entry: Any, now: float | None = None) -> Record:
    """An entry of Workers KV's bulk format."""
    if not isinstance(entry, dict):
        raise ValueError('expected {"key": ..., "value": ...}')
    key, value = entry.get("key"), entry.get("value")
    if not isinstance(key, str) or not isinstance(value, str):
        raise ValueError('expected "key" and "value" as strings')
    encoded = entry.get("base64", False)
    if not isinstance(encoded, bool):
        raise ValueError('"base64" must be true or false')
    record: Record = {"key": key, "value": value}
    if encoded:
        record["encoding"] = "base64"
    ttl, expiration = entry.get("expiration_ttl"), entry.get("expiration")
    if ttl is not None:
        record["ttl"] = _seconds(ttl, "expiration_ttl")
    elif expiration is not None:
        left = _seconds(expiration, "expiration") - (time.time() if now is None else now)
        if left < 1:
            return {**record, EXPIRED: True}
        record["ttl"] = int(left)  # rounded down: the copy never outlives the original
    return record


def consul(entry: Any) -> Record:
    """An entry of `consul kv export`: its value in base64 (null or absent: empty)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
        raise ValueError('expected {"key": ..., "flags": ..., "value": ...}')
    value = entry.get("value") or ""
    if not isinstance(value, str):
        raise ValueError('"value" must be a string of base64')
    try:
        content = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError('"value" is not base64') from None
    try:
        return {"key": entry["key"], "value": content.decode("utf-8")}
    except UnicodeDecodeError:
        return {"key": entry["key"], "value": value, "encoding": "base64"}


def kvdb_pair(entry: Any) -> Record:
    """An entry of kvdb.io's JSON listing with values: [key, value]."""
    if not (
        isinstance(entry, list) and len(entry) == 2 and all(isinstance(part, str) for part in entry)
    ):
        raise ValueError("expected a pair [key, value] of strings")
    return {"key": entry[0], "value": entry[1]}


def kvdb_line(line: bytes) -> Record:
    """A line of kvdb.io's text listing with values: key=value (its line end removed)."""
    try:
        text = line.decode("utf-8").removesuffix("\n").removesuffix("\r")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    key, equals, value = text.partition("=")
    if not equals:
        raise ValueError("expected key=value")
    return {"key": key, "value": value}


def _seconds(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f'"{name}" must be a number of seconds')
    if value < 0:
        raise ValueError(f'"{name}" cannot be negative')
    return int(value)


# --- reading a JSON array one entry at a time --------------------------------------------------


def json_array(chunks: Iterable[bytes]) -> Iterator[Any]:
    """The entries of a JSON array read from its bytes as they come (UTF-8, a BOM allowed),
    one at a time, so a file of any size is read in constant memory. BadRecord when it is not
    an array, an entry is not JSON, or something follows the array."""
    decoder = json.JSONDecoder()
    text = codecs.getincrementaldecoder("utf-8-sig")()
    pending = iter(chunks)
    buffer, at, ended = "", 0, False
    state = "start"  # then "first" (after "["), "entry" (after ","), "after" (an entry), "end"
    number = 0

    def more() -> bool:
        nonlocal buffer, at, ended
        if ended:
            return False
        chunk = next(pending, None)
        try:
            decoded = text.decode(chunk or b"", final=chunk is None)
        except UnicodeDecodeError:
            raise BadRecord(number + 1, "not UTF-8 text", "record") from None
        ended = chunk is None
        buffer, at = buffer[at:] + decoded, 0
        return True

    while True:
        while at < len(buffer) and buffer[at] in " \t\r\n":
            at += 1
        if at == len(buffer):
            if more():
                continue
            if state != "end":
                raise BadRecord(number + 1, "the file ends before its JSON array does", "record")
            return
        char = buffer[at]
        if state == "start":
            if char != "[":
                raise BadRecord(1, "expected a JSON array [...]", "record")
            state, at = "first", at + 1
        elif state == "end":
            raise BadRecord(number, "something follows the JSON array", "record")
        elif state == "after" or (state == "first" and char == "]"):
            if char == "]":
                state, at = "end", at + 1
            elif char == "," and state == "after":
                state, at = "entry", at + 1
            else:
                raise BadRecord(number + 1, "expected , or ] between entries", "record")
        else:
            try:
                entry, end = decoder.raw_decode(buffer, at)
            except json.JSONDecodeError as exc:
                if len(buffer) - at < MAX_ENTRY_CHARS and more():
                    continue  # the entry goes on in the bytes still to come
                raise BadRecord(number + 1, f"not JSON ({exc.msg})", "record") from None
            cut = isinstance(entry, int | float) and not buffer[end:].strip(_NUMBER_CHARACTERS)
            if cut and more():
                continue  # a number the chunk's end may have cut ("12" of "123", "-1." of "-1.5")
            number += 1
            state, at = "after", end
            yield entry


def _first_character(stream: IO[bytes]) -> tuple[bytes, bytes]:
    """The bytes read off the stream up to its first that is not white space (a byte order
    mark left out), and that one (b"" at the end)."""
    read = b""
    while True:
        byte = stream.read(1)
        if byte == b"\xef":
            byte += stream.read(2)
            if byte == codecs.BOM_UTF8:
                continue
        read += byte
        if byte not in (b" ", b"\t", b"\r", b"\n"):
            return read, byte[:1]


class _Prepended:
    """A stream with the bytes read off it put back in front."""

    def __init__(self, head: bytes, stream: IO[bytes]):
        self._head, self._stream = head, stream

    def read(self, size: int = -1) -> bytes:
        head, self._head = self._head, b""
        return head + self._stream.read(size if size < 0 else max(size - len(head), 0))

    def __iter__(self) -> Iterator[bytes]:
        head, self._head = self._head, b""
        if head and not head.endswith(b"\n"):
            head += self._stream.readline()
        yield from io.BytesIO(head)  # its lines
        yield from self._stream
