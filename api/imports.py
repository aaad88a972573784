"""Imports: `POST /v1/<bucket>` with many keys in one body, read as a stream.

Two formats:

- NDJSON (Content-Type: application/x-ndjson): one `{"key", "value", "encoding"?, "ttl"?}` a
  line, as an export (or a listing with values) writes them; its "version" is ignored. Blank
  lines are skipped, and counted in the line numbers.
- A JSON array (application/json, a body starting with "["): Workers KV's bulk format,
  `[{"key", "value", "base64"?, "expiration_ttl"?, "expiration"?, "metadata"?}]`. Its
  `expiration` (Unix time, seconds) is taken as the seconds left until then; `metadata` must be
  null, {} or absent: ThisDB keys carry none, and dropping it silently would lose data.

A JSON object body stays a transaction (api.transactions).

This module reads the body and yields its entries, each checked as a single write checks its
key, value and ttl; api.writes.import_items applies them in batches. The body is read a chunk at
a time and never held whole: memory stays within one batch (api.writes) and one line.
"""

import codecs
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.conf import settings

from api.errors import ApiError, BadRequest, LengthRequired, PayloadTooLarge
from api.inputs import MAX_DIGITS
from api.transactions import key_field, ttl_field, value_field

BROKE_OFF = "the body broke off (the client left or stalled)"
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson")
READ_CHUNK = 64 * 1024  # bytes a read asks the server for
# The longest line (or array item) taken: a value at its limit written as JSON text whose every
# byte is escaped (\u0000: 6 bytes), and a key likewise, with room for the field names. A longer
# one is refused when it passes this, without being held whole.
_ESCAPED = 6


def max_line_bytes() -> int:
    return _ESCAPED * (settings.THISDB_VALUE_MAX_BYTES + settings.THISDB_KEY_MAX_BYTES) + 1024


@dataclass(frozen=True, slots=True)
class Entry:
    """One key to write: from line (or item) `place` of the body, 1-based."""

    place: int
    key: str
    value: bytes
    ttl: int | None  # None: the bucket's default_ttl


class BadEntry(Exception):
    """The body cannot go on at `place`: the entry there is refused (`error`), or the body
    broke off before it."""

    def __init__(self, place: int, error: ApiError):
        super().__init__(place, error)
        self.place, self.error = place, error


def is_ndjson(meta) -> bool:
    """Whether the request's Content-Type says NDJSON (parameters such as charset aside)."""
    content_type = meta.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    return content_type in NDJSON_TYPES


# Reading the body.


class Body:
    """The request body as a stream of chunks, in constant memory.

    Under a server that ends the WSGI input at the body's end (wsgi.input_terminated: gunicorn,
    the production front) the input is read directly until b"": a chunked body has no
    Content-Length there. Otherwise Django's request stream, which ends at Content-Length. What
    api.inputs.buffer_body read already comes first. Never request.body, which reads it all.
    A client that leaves or stalls makes the read fail (OSError): BadEntry at the next place.
    """

    def __init__(self, request):
        django_request = request._request
        meta = django_request.META
        declared = meta.get("CONTENT_LENGTH") or ""
        valid = declared.isascii() and declared.isdigit() and len(declared) <= MAX_DIGITS
        self.declared = int(declared) if valid else None
        if meta.get("wsgi.input_terminated") and "wsgi.input" in meta:
            self._source: Callable[[int], bytes] = meta["wsgi.input"].read
        elif not declared and "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
            if "wsgi.input" in meta:  # the server cannot say where a chunked body ends
                raise LengthRequired(
                    "send a Content-Length header: this server cannot read chunked bodies"
                )
            self._source = django_request.read  # ASGI: the stream is the whole body
        else:
            self._source = django_request.read
        self._head = getattr(django_request, "_thisdb_body", None) or b""
        self.received = 0

    def read(self, place: int) -> bytes:
        """The next chunk, b"" at the end. `place`: where the body is, for the errors."""
        if self._head:
            chunk, self._head = self._head, b""
        else:
            try:
                chunk = self._source(READ_CHUNK)
            except OSError:
                raise BadEntry(place, BadRequest(BROKE_OFF)) from None
        self.received += len(chunk)
        if not chunk and self.declared is not None and self.received < self.declared:
            raise BadEntry(
                place,
                BadRequest(
                    f"the body ended after {self.received} of its {self.declared} bytes "
                    "(Content-Length)"
                ),
            )
        return chunk

    def first_byte(self) -> bytes:
        """The body's first byte that is not whitespace (b"" if none), read into its head."""
        while True:
            start = self._head.lstrip()[:1]
            if start or len(self._head) > READ_CHUNK:
                return start
            chunk = self._read_source(READ_CHUNK)
            if not chunk:
                return b""
            self._head += chunk

    def head_and_rest(self, limit: int) -> bytes:
        """The body, up to `limit` bytes (a transaction's, which api.inputs.read_body checks)."""
        pieces, size = [self._head], len(self._head)
        self._head = b""
        while size < limit and (chunk := self._read_source(min(READ_CHUNK, limit - size))):
            pieces.append(chunk)
            size += len(chunk)
        return b"".join(pieces)

    def _read_source(self, size: int) -> bytes:
        try:
            return self._source(size)
        except OSError:
            raise BadRequest(BROKE_OFF) from None


class FileBody(Body):
    """A file as a body, read to its end: the bucket page's upload (dashboard.bulk), which
    Django has spilled to a temporary file past a few MiB."""

    def __init__(self, file):
        self.declared = None  # the file's end is the body's
        self._source = file.read
        self._head = b""
        self.received = 0


# NDJSON.

_NDJSON_FIELDS = {"key", "value", "encoding", "ttl", "version"}
_LINE_SHAPE = 'each line must be a JSON object {"key", "value", "encoding"?, "ttl"?}'


def ndjson_entries(body: Body) -> Iterator[Entry]:
    """The entries of an NDJSON body, in order; BadEntry at the first line refused."""
    for number, line in _lines(body):
        if not line or line.isspace():
            continue
        try:
            yield _ndjson_entry(number, line)
        except ApiError as exc:
            raise BadEntry(number, exc) from None


def _lines(body: Body) -> Iterator[tuple[int, bytes]]:
    """(number, line) for each line of the body, without its newline; a line is refused when
    it grows past max_line_bytes(), before it is held whole."""
    cap = max_line_bytes()
    number = 0
    pending: list[bytes] = []  # the line being read, in pieces
    pending_size = 0
    while chunk := body.read(number + 1):
        lines = chunk.split(b"\n")
        tail = lines.pop()  # after the chunk's last newline: the start of the next line
        if lines and pending:
            lines[0] = b"".join([*pending, lines[0]])
            pending, pending_size = [], 0
        for line in lines:
            number += 1
            if len(line) > cap:
                raise BadEntry(number, _too_long("line", cap))
            yield number, line
        if tail:
            pending.append(tail)
            pending_size += len(tail)
            if pending_size > cap:
                raise BadEntry(number + 1, _too_long("line", cap))
    if pending:
        yield number + 1, b"".join(pending)


def _too_long(what: str, cap: int) -> BadRequest:
    return BadRequest(
        f"this {what} is longer than {cap} bytes: no key and value of the limits "
        f"({settings.THISDB_KEY_MAX_BYTES} and {settings.THISDB_VALUE_MAX_BYTES} bytes) "
        f"take that much (is it one {what}?)"
    )


def _ndjson_entry(number: int, line: bytes) -> Entry:
    where = f"line {number}"
    try:
        text = line.decode("utf-8")
        if number == 1:
            text = text.removeprefix("\ufeff")  # a byte order mark some editors write
        data = _DECODER.decode(text)
    except UnicodeDecodeError:
        raise BadRequest(f"{where}: not valid UTF-8") from None
    except (ValueError, RecursionError):
        raise BadRequest(f"{where}: not valid JSON: {_LINE_SHAPE}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"{where}: {_LINE_SHAPE}")
    _only(data, _NDJSON_FIELDS, where)
    key = key_field(data.get("key"), where)
    value = _value(data.get("value"), data.get("encoding"), where)
    return Entry(number, key, value, ttl_field(data.get("ttl"), where))


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


# One decoder for every line: json.loads with an argument makes a new one each call (a tenth of
# a line's time).
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def _only(data: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadRequest(
            f"{where}: unknown fields {', '.join(unknown)}; it takes {', '.join(sorted(allowed))}"
        )


def _value(raw, encoding, where: str) -> bytes:
    """A value as a single write takes it; over the limit is a bad line (400), not a body too
    large (the body may be any size)."""
    try:
        return value_field(raw, encoding, where)
    except PayloadTooLarge as exc:
        raise BadRequest(str(exc.detail)) from None


# Workers KV's JSON array.

_WORKERS_KV_FIELDS = {"key", "value", "base64", "expiration_ttl", "expiration", "metadata"}


def workers_kv_entries(body: Body) -> Iterator[Entry]:
    """The entries of a JSON array body in Workers KV's bulk format, in order; BadEntry at the
    first item refused."""
    for number, item in _array_items(body):
        try:
            yield _workers_kv_entry(number, item)
        except ApiError as exc:
            raise BadEntry(number, exc) from None


def _workers_kv_entry(number: int, item) -> Entry:
    where = f"item {number}"
    if not isinstance(item, dict):
        raise BadRequest(
            f'{where}: each item must be an object {{"key", "value", "base64"?, "expiration_ttl"?}}'
        )
    _only(item, _WORKERS_KV_FIELDS, where)
    if item.get("metadata") not in (None, {}):
        raise BadRequest(
            f"{where}: metadata is not supported: ThisDB keys carry none; leave it out (or "
            "null) to import the key without it"
        )
    as_base64 = item.get("base64", False)
    if not isinstance(as_base64, bool):
        raise BadRequest(f"{where}: base64 must be true or false, not {as_base64!r}")
    key = key_field(item.get("key"), where)
    value = _value(item.get("value"), "base64" if as_base64 else None, where)
    ttl = ttl_field(item.get("expiration_ttl"), where, "expiration_ttl")
    if item.get("expiration") is not None:
        if ttl is not None:
            raise BadRequest(f"{where}: give expiration or expiration_ttl, not both")
        ttl = _seconds_until(item["expiration"], where)
    return Entry(number, key, value, ttl)


def _seconds_until(expiration, where: str) -> int:
    """Workers KV's `expiration` (Unix time, seconds) as the whole seconds left until it."""
    if isinstance(expiration, bool) or not isinstance(expiration, int):
        raise BadRequest(
            f"{where}: expiration must be a Unix time in whole seconds, not {expiration!r}"
        )
    left = expiration - int(time.time())
    if left < 1:
        raise BadRequest(
            f"{where}: expiration {expiration} is not in the future: the key would expire at "
            "once (leave the item out, or give a later expiration)"
        )
    if left > settings.THISDB_MAX_TTL:
        raise BadRequest(
            f"{where}: expiration is more than {settings.THISDB_MAX_TTL} seconds away; leave "
            "it out and give expiration_ttl 0 for a key that never expires"
        )
    return left


_NOT_WHITESPACE = re.compile(r"[^ \t\n\r]")


def _array_items(body: Body) -> Iterator[tuple[int, object]]:
    """(number, item) for each item of a JSON array body: see _ArrayReader."""
    return _ArrayReader(body).items()


class _ArrayReader:
    """A JSON array parsed incrementally with the json module's own decoder: an item is decoded
    once the buffer holds it whole, so memory holds one item and one chunk.

    Why not ijson: the standard decoder refuses what transactions and NDJSON lines refuse (NaN,
    the same escapes, the same messages), an item's size is bounded before it is held whole,
    and there is nothing more to install. An item cut by a chunk's end fails to decode and is
    tried again once the buffer has grown to twice what was tried, so a large item costs at
    most about twice its size in decoding and copying."""

    def __init__(self, body: Body):
        self.body = body
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.text, self.pos, self.ended = "", 0, False
        self.number = 0  # items read

    def more(self, at_least: int = 1) -> bool:
        """Read at least `at_least` more characters into the buffer (fewer at the body's end);
        False if nothing more came."""
        if self.ended:
            return False
        pieces, size = [], 0
        while size < at_least and not self.ended:
            chunk = self.body.read(self.number + 1)
            try:
                decoded = self.utf8.decode(chunk, final=not chunk)
            except UnicodeDecodeError:
                raise self.refused("not valid UTF-8") from None
            self.ended = not chunk
            pieces.append(decoded)
            size += len(decoded)
        self.text = self.text[self.pos :] + "".join(pieces)  # what is decoded already goes
        self.pos = 0
        return size > 0

    def next_char(self) -> str:
        """The next character that is not whitespace ("" at the end), left in place."""
        while True:
            found = _NOT_WHITESPACE.search(self.text, self.pos)
            if found:
                self.pos = found.start()
                return self.text[self.pos]
            self.pos = len(self.text)
            if not self.more():
                return ""

    def refused(self, why: str) -> BadEntry:
        place = self.number + 1
        return BadEntry(place, BadRequest(f"item {place}: {why}"))

    def items(self) -> Iterator[tuple[int, object]]:
        if self.next_char() != "[":
            raise self.refused('the body must be a JSON array [{"key", "value"}, ...]')
        self.pos += 1
        if self.next_char() == "]":
            self.pos += 1
        else:
            while True:
                item = self.item()
                yield self.number, item
                following = self.next_char()
                self.pos += 1
                if following == "]":
                    break
                if following != ",":
                    raise self.refused("expected , or ] after the item before")
                if self.next_char() == "]":
                    raise self.refused("an array cannot end with a comma")
        if self.next_char():
            raise self.refused("nothing may follow the array's closing ]")

    def item(self):
        """The item at the buffer's position, decoded whole; the position moves past it."""
        cap = max_line_bytes()
        while True:
            try:
                item, end = _DECODER.raw_decode(self.text, self.pos)
                if end < len(self.text) or self.ended:
                    break  # a number at the buffer's end could go on in the next chunk
                failure = "cut short"
            except json.JSONDecodeError as exc:
                failure = f"not valid JSON: {exc.msg}"
                # A mistake well before the buffer's end is one whatever follows.
                if not exc.msg.startswith("Unterminated") and exc.pos + 16 < len(self.text):
                    raise self.refused(failure) from None
            except RecursionError:
                raise self.refused("nested too deeply") from None
            if self.ended:
                raise self.refused(failure)
            tried = len(self.text) - self.pos
            if tried > cap:
                raise BadEntry(self.number + 1, _too_long("item", cap))
            self.more(tried)
        self.number += 1
        self.pos = end
        return item
