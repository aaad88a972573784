"""The three formats of the v1 API: text (default), json and ndjson.

A view answers with a Payload; each renderer asks it for its own shape, so one response type
knows its text, JSON and NDJSON forms in one place.
"""

import base64
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator

from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import ResponseHeaders
from rest_framework import exceptions, renderers
from rest_framework.negotiation import DefaultContentNegotiation

FORMATS = ("text", "json", "ndjson")


def encode_value(value: bytes) -> dict:
    """A stored value in JSON: as text when it is UTF-8, else as base64 (and says so)."""
    try:
        return {"value": value.decode("utf-8")}
    except UnicodeDecodeError:
        return {"value": base64.b64encode(value).decode("ascii"), "encoding": "base64"}


class Payload(ABC):
    @abstractmethod
    def as_text(self) -> bytes: ...

    @abstractmethod
    def as_json(self): ...

    def as_ndjson(self) -> list:
        return [self.as_json()]


class Message(Payload):
    """A short answer: "OK", a bucket id, a token, an error."""

    def __init__(self, text: str, json_name: str = "result"):
        self.text, self.json_name = text, json_name

    def as_text(self) -> bytes:
        return self.text.encode()

    def as_json(self):
        return {self.json_name: self.text}


class Failure(Message):
    """An error with fields beside its message (an import's: where it stopped)."""

    def __init__(self, text: str, fields: dict):
        super().__init__(text, json_name="error")
        self.fields = fields

    def as_json(self):
        return {"error": self.text, **self.fields}


class Value(Payload):
    def __init__(self, key: str, value: bytes):
        self.key, self.value = key, value

    def as_text(self) -> bytes:
        return self.value  # the stored bytes, unchanged

    def as_json(self):
        return {"key": self.key, **encode_value(self.value)}


class Counter(Payload):
    def __init__(self, key: str, value: int):
        self.key, self.value = key, value

    def as_text(self) -> bytes:
        return str(self.value).encode()

    def as_json(self):
        return {"key": self.key, "value": self.value}


class Imported(Payload):
    """An import's answer: how many lines (or items) it wrote."""

    def __init__(self, count: int):
        self.count = count

    def as_text(self) -> bytes:
        return str(self.count).encode()

    def as_json(self):
        return {"imported": self.count}


class BucketList(Payload):
    """One page of the caller's buckets, in id order, with the cursor of the next page if any."""

    def __init__(self, rows: list[tuple], next_cursor: str | None):
        self.rows, self.next_cursor = rows, next_cursor

    def _items(self) -> list[dict]:
        return [
            {"bucket": bucket_id, "default_ttl": ttl, "keys": keys, "bytes": size}
            for bucket_id, ttl, keys, size in self.rows
        ]

    def as_text(self) -> bytes:
        return "\n".join(row[0] for row in self.rows).encode()

    def as_json(self):
        return {"items": self._items(), "next_cursor": self.next_cursor}

    def as_ndjson(self) -> list:
        return self._items()


class KeyList(Payload):
    """One page of a bucket's keys (and values), with the cursor of the next page if any.

    With values, JSON and NDJSON items also carry "ttl": the whole seconds the key has left
    (rounded up), 0 if it never expires: what a write's ?ttl= takes, so a copy keeps its expiry.
    """

    def __init__(self, rows: list[tuple], with_values: bool, next_cursor: str | None):
        # rows: (key, version) or, with values, (key, value, ttl, version) as
        # statements.list_page gives them
        self.rows, self.with_values, self.next_cursor = rows, with_values, next_cursor

    def _items(self) -> list[dict]:
        if self.with_values:
            return [
                {"key": key, **encode_value(bytes(value)), "ttl": ttl, "version": str(version)}
                for key, value, ttl, version in self.rows
            ]
        return [{"key": key, "version": str(version)} for key, version in self.rows]

    def as_text(self) -> bytes:
        # One key a line; with values, "key<TAB>value" (use json for values holding newlines).
        if self.with_values:
            lines = [key.encode() + b"\t" + bytes(value) for key, value, *_ in self.rows]
        else:
            lines = [row[0].encode() for row in self.rows]
        return b"\n".join(lines)

    def as_json(self):
        return {"items": self._items(), "next_cursor": self.next_cursor}

    def as_ndjson(self) -> list:
        return self._items()


class Document(Payload):
    """A JSON document (a transaction's answer): JSON in every format, as it has no text form."""

    def __init__(self, document: dict):
        self.document = document

    def as_text(self) -> bytes:
        return _dumps(self.document)

    def as_json(self):
        return self.document


class PlainTextRenderer(renderers.BaseRenderer):
    media_type = "text/plain"
    format = "text"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data.as_text()  # data: the Payload of an ApiResponse


def _dumps(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class JSONRenderer(renderers.BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None  # JSON is UTF-8 by definition (RFC 8259)

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return _dumps(data.as_json())


class NDJSONRenderer(renderers.BaseRenderer):
    media_type = "application/x-ndjson"
    format = "ndjson"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return b"".join(_dumps(line) + b"\n" for line in data.as_ndjson())


class FormatNegotiation(DefaultContentNegotiation):
    """`?format=` or the Accept header picks the format; anything we cannot produce is a 406
    (DRF's default answers an unknown ?format= with 404)."""

    def filter_renderers(self, renderers, format):
        matching = [r for r in renderers if r.format == format]
        if not matching:
            raise exceptions.NotAcceptable(
                f"format {format!r} is not supported: use text, json or ndjson"
            )
        return matching

    def select_renderer(self, request, renderers, format_suffix=None):
        # ?format= wins over Accept (the JS SDK sends Accept: application/json on every call and
        # ?format= when one call asks for another format); DRF would match both and answer 406.
        wanted = format_suffix
        if not wanted and request._request.META.get("QUERY_STRING"):  # most requests have none
            wanted = request.query_params.get(self.settings.URL_FORMAT_OVERRIDE)
            if request.query_params.get("watch") == "true" and wanted in (None, "sse", "json"):
                # A watch (api.watching) streams events or answers a long-poll itself; what
                # it answers before that (an error) is JSON, whatever the Accept header says
                # (text/event-stream for a stream).
                wanted = "json"
        if wanted:
            renderer = self.filter_renderers(renderers, wanted)[0]
            return renderer, renderer.media_type
        accept = request._request.META.get("HTTP_ACCEPT", "*/*")
        if accept in ("*/*", ""):  # curl's and most SDKs': the first renderer, without parsing
            return renderers[0], renderers[0].media_type
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except exceptions.NotAcceptable as exc:
            if "not supported" in str(exc.detail):
                raise
            raise exceptions.NotAcceptable(
                "cannot answer in the Accept header's media types: accept text/plain, "
                "application/json or application/x-ndjson, or pass ?format="
            ) from None


class ApiHeaders(ResponseHeaders):
    """Django's response headers, with a shorter way in for the ones the API builds itself.

    Django checks every header it is given: the name encodes as ASCII, the value as latin-1, and
    neither holds a newline (two encodes and four scans, about 85 Python opcodes a header). The
    API's own headers (content type, Vary, nosniff, the rate-limit figures) are made here of
    constants and integers and pass those checks by construction, and every answer carries six
    of them: they are stored as Django stores a checked header, without the checks
    (bench/NOTES.md, sixth pass). Anything else (a cursor, Retry-After, Allow) goes through
    Django's checked `response[name] = value` as before.
    """

    def put(self, lowered: str, name: str, value: str) -> None:
        """`name` (whose lower case is `lowered`) set to `value`: ASCII, no newline."""
        self._store[lowered] = (name, value)

    def items(self):
        # The pairs as stored: Mapping's items() would look each name up again.
        return self._store.values()


class ApiResponse(HttpResponse):
    """An answer of the v1 API: a Payload and a status, rendered in the format negotiated for the
    request once the answer is final (ApiViewSet.finalize_response).

    A plain HttpResponse rather than DRF's Response (a template response rendered late): the
    renderer is known before the view runs, so there is nothing to defer, and the content type
    is the renderer's even when the body is empty (an empty bucket, an empty value), which the
    official SDKs need on every answer.
    """

    headers: ApiHeaders

    def __init__(self, payload: Payload, status: int = 200):
        super().__init__(status=status)
        # Without Django's text/html default: render_with() sets the renderer's type.
        self.headers = ApiHeaders({})
        self.payload = payload

    def render_with(self, renderer: renderers.BaseRenderer) -> None:
        self.content = renderer.render(self.payload)
        self.headers.put("content-type", "Content-Type", content_type(renderer))


class Prepared(ApiResponse):
    """An answer whose body and type are made already, whatever the format (a watch's stream
    or long-poll, api.watching)."""

    def __init__(self, content: bytes, content_type: str, status: int = 200):
        super().__init__(Message(""), status)
        self.prepared = content, content_type

    def render_with(self, renderer: renderers.BaseRenderer) -> None:
        self.content, kind = self.prepared
        self.headers.put("content-type", "Content-Type", kind)


class Streamed(StreamingHttpResponse):
    """An answer made while it is sent (an export, api.exports): chunks of lines ready in the
    negotiated format, each sent before the next is made (thisdb_site.front)."""

    headers: ApiHeaders

    def __init__(self, chunks: Iterator[bytes]):
        super().__init__(chunks)
        self.headers = ApiHeaders({})  # as ApiResponse's: the type is the renderer's

    def render_with(self, renderer: renderers.BaseRenderer) -> None:
        self.headers.put("content-type", "Content-Type", content_type(renderer))


class NotModified(ApiResponse):
    """304: the version the client holds is current; no body, in any format."""

    def __init__(self):
        super().__init__(Message(""), 304)

    def render_with(self, renderer: renderers.BaseRenderer) -> None:
        self.content = b""


def with_etag(response: ApiResponse, version: int) -> ApiResponse:
    """The key's version as the answer's ETag: a quoted integer, checked by construction."""
    response.headers.put("etag", "ETag", f'"{version}"')
    return response


def content_type(renderer: renderers.BaseRenderer) -> str:
    charset = renderer.charset
    return f"{renderer.media_type}; charset={charset}" if charset else renderer.media_type
