"""Reading and checking what a request sends. Each refusal says what to send instead."""

import base64
import binascii
import io
import re
from typing import cast
from urllib.parse import parse_qsl, unquote_to_bytes

from django.conf import settings
from django.http.multipartparser import MultiPartParser, MultiPartParserError

from api.errors import BadRequest, LengthRequired, PayloadTooLarge

_WHOLE = re.compile(r"[0-9]+")
# Exactly this, nothing around it: Python's int() would also take spaces, a newline, "1_000".
_DELTA = re.compile(rb"[+-]?[0-9]+")
# What encode_cursor makes: unpadded base64url, whose length is never 1 more than a multiple of
# 4 (the OpenAPI schema gives this pattern too).
CURSOR_PATTERN = r"(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?"
_CURSOR = re.compile(CURSOR_PATTERN)
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no", "")


FORM_MAX_BYTES = 64 * 1024  # the API's forms carry a few short fields
MAX_DIGITS = 20  # no whole number the API takes is longer (2**64 has 20 digits)
# A counter's range, and an increment's: PostgreSQL's bigint.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def form_fields(request) -> dict[str, str]:
    """The form fields of a POST or PATCH, whatever its Content-Type says.

    The JS fetch examples send `a=b&c=d` as text/plain and PHP may send multipart, so the body
    is parsed as a form unless it is multipart. Query-string fields count too; the body wins.
    """
    django_request = request._request
    fields = query_fields(request)
    body = read_body(request, FORM_MAX_BYTES, "the form body")
    content_type = django_request.META.get("CONTENT_TYPE", "")
    try:
        if content_type.startswith("multipart/form-data"):
            # Django parses multipart bodies of POSTs only, and only up to Content-Length. It
            # would turn bytes that are not UTF-8 into U+FFFD: read each field as Latin-1 (its
            # bytes unchanged), then decode it strictly.
            meta = {**django_request.META, "CONTENT_LENGTH": str(len(body))}
            data, _files = MultiPartParser(
                meta, io.BytesIO(body), django_request.upload_handlers, "iso-8859-1"
            ).parse()
            # One string a name (the stubs allow a list for a name with no value).
            fields.update((name, _utf8(cast(str, value))) for name, value in data.items())
        else:
            # errors="strict": an escape that is not UTF-8 (%FF) is refused, never read as U+FFFD.
            text = body.decode("utf-8")
            fields.update(parse_qsl(text, keep_blank_values=True, errors="strict"))
    except UnicodeDecodeError:
        raise BadRequest("the form body is not valid UTF-8") from None
    except MultiPartParserError:
        raise BadRequest("the multipart form body is malformed") from None
    return fields


def query_fields(request) -> dict[str, str]:
    """The query string's fields (the last value of a repeated one), as strict UTF-8."""
    fields = dict(request.query_params.items())
    if all(name.isascii() and value.isascii() for name, value in fields.items()):
        return fields  # nothing Django could have decoded leniently
    return _strict_query(request)


def query_field(request, name: str) -> str:
    """One query field as strict UTF-8, "" when absent."""
    value = request.query_params.get(name, "")
    return value if value.isascii() else _strict_query(request).get(name, "")


def _strict_query(request) -> dict[str, str]:
    """Django decodes a query string leniently: an escape that is not UTF-8 (%FF) becomes U+FFFD
    and raw bytes that are not UTF-8 make it read the whole string as Latin-1. Read the raw
    bytes again (as Latin-1, which keeps them unchanged) and decode each field strictly."""
    django_request = request._request
    scope = getattr(django_request, "scope", None)  # ASGI: the bytes as received
    if scope is not None:
        raw = scope.get("query_string", b"")
        raw = raw.decode("iso-8859-1") if isinstance(raw, bytes) else raw
    else:
        raw = django_request.META.get("QUERY_STRING", "")  # WSGI: the bytes, as Latin-1
    pairs = parse_qsl(raw, keep_blank_values=True, encoding="iso-8859-1")
    try:
        return {_utf8(name): _utf8(value) for name, value in pairs}
    except UnicodeDecodeError:
        raise BadRequest(
            "the query string is not valid UTF-8: percent-encode the UTF-8 bytes of each field"
        ) from None


def _utf8(latin1: str) -> str:
    return latin1.encode("iso-8859-1").decode("utf-8")


# Set in the WSGI environ or ASGI scope of a request whose path bytes are not UTF-8.
PATH_NOT_UTF8 = "thisdb.path_not_utf8"


def mark_path_not_utf8(sender, environ=None, scope=None, **kwargs) -> None:
    """A request_started receiver: note a path whose bytes are not UTF-8, while they are still
    known. Django then builds path_info from them and percent-encodes again the bytes that are
    not UTF-8 (repercent_broken_unicode, which also overwrites PATH_INFO), so /v1/B/a%C3%28 and
    /v1/B/a%25C3( would both read as the key "a%C3("; an ASGI server reads them as U+FFFD.

    An ASCII path is always UTF-8, so most requests cost one flag test (str.isascii is O(1)).
    """
    if environ is not None:
        path = environ.get("PATH_INFO", "")  # WSGI: the percent-decoded bytes, as Latin-1
        raw = None if path.isascii() else path.encode("iso-8859-1", "replace")
        marks = environ
    elif scope is not None and scope.get("raw_path") is not None:
        # ASGI: "path" is decoded already; "raw_path" is the path as received.
        raw = None if scope.get("path", "").isascii() else unquote_to_bytes(scope["raw_path"])
        marks = scope
    else:
        return
    if raw is not None:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            marks[PATH_NOT_UTF8] = True


def require_utf8_path(request, key: str) -> None:
    """Refuse a key whose path was not UTF-8 (see mark_path_not_utf8), so it is never stored
    under another name. Only a key holding "%" (WSGI) or U+FFFD (ASGI) can come from such a
    path, so other keys pay one substring search."""
    if "%" not in key and "\ufffd" not in key:
        return
    django_request = request._request
    marks = getattr(django_request, "scope", None) or django_request.META
    if PATH_NOT_UTF8 in marks:
        raise BadRequest(
            "keys are UTF-8: this path holds bytes that are not valid UTF-8 "
            "(percent-encode the UTF-8 bytes of the key)"
        )


def read_value(request) -> bytes:
    """The raw request body, byte for byte; over THISDB_VALUE_MAX_BYTES (1 MiB) is a 413."""
    return read_body(request, settings.THISDB_VALUE_MAX_BYTES, "the value")


def read_body(request, limit: int, what: str) -> bytes:
    """The request body, read from the stream with a cap: a chunked body without
    Content-Length is measured too, and an oversized one is never held in memory whole."""
    django_request = request._request
    meta = django_request.META
    declared = meta.get("CONTENT_LENGTH") or ""
    if declared and not (_WHOLE.fullmatch(declared) and len(declared) <= MAX_DIGITS):
        raise BadRequest("the Content-Length header is not a whole number")
    if declared and int(declared) > limit:
        raise PayloadTooLarge(f"{what} is larger than the limit of {limit} bytes")
    data = getattr(django_request, "_thisdb_body", None)  # read already by buffer_body()
    if data is None:
        data = _stream(django_request, declared).read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"{what} is larger than the limit of {limit} bytes")
    return data


def buffer_body(request) -> None:
    """Read the body before the request's first query (the key's lookup): a slow upload then
    holds a server thread, never a pooled database connection. What cannot be read here (too
    large, malformed) is left for read_body() to refuse with the right message."""
    django_request = request._request
    cap = max(settings.THISDB_VALUE_MAX_BYTES, FORM_MAX_BYTES)
    declared = django_request.META.get("CONTENT_LENGTH") or ""
    if declared and not (_WHOLE.fullmatch(declared) and len(declared) <= MAX_DIGITS):
        return
    if declared and int(declared) > cap:
        return
    try:
        django_request._thisdb_body = _stream(django_request, declared).read(cap + 1)
    except LengthRequired:
        return


def _stream(django_request, declared: str):
    meta = django_request.META
    if not declared and "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        return _chunked_wsgi_stream(meta) or django_request
    return django_request


def _chunked_wsgi_stream(meta):
    """The WSGI input of a chunked body, or None under ASGI (whose stream has it all already).

    Django's WSGI request reads no further than Content-Length, so a chunked body would read as
    empty and be stored as such. A server that decodes chunks (gunicorn) says so with
    wsgi.input_terminated; with any other the body cannot be read, and storing "" would lose the
    value: refuse instead.
    """
    if "wsgi.input" not in meta:
        return None
    if meta.get("wsgi.input_terminated"):
        return meta["wsgi.input"]
    raise LengthRequired("send a Content-Length header: this server cannot read chunked bodies")


def check_key(key: str) -> str:
    size = len(key.encode("utf-8", "surrogatepass"))
    limit = settings.THISDB_KEY_MAX_BYTES
    if size == 0 or size > limit:
        raise BadRequest(f"a key must be 1 to {limit} bytes of UTF-8, this one has {size}")
    if "\x00" in key:
        raise BadRequest("a key cannot contain the NUL character")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("a key must be valid UTF-8") from None
    return key


def check_prefix(prefix: str, name: str = "prefix") -> str:
    if len(prefix.encode("utf-8", "surrogatepass")) > settings.THISDB_KEY_MAX_BYTES:
        raise BadRequest(
            f"{name} is longer than a key can be ({settings.THISDB_KEY_MAX_BYTES} bytes)"
        )
    if "\x00" in prefix:
        raise BadRequest(f"{name} cannot contain the NUL character")
    return prefix


def whole_number(value: str | None, name: str, *, low: int, high: int, what: str = "") -> int:
    text = (value or "").strip()
    valid = _WHOLE.fullmatch(text) and len(text) <= MAX_DIGITS and low <= int(text) <= high
    if not valid:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}{what}, not {value!r}")
    return int(text)


def ttl(value: str | None, name: str = "ttl") -> int:
    """Seconds to live: 0 means never expire."""
    return whole_number(
        value, name, low=0, high=settings.THISDB_MAX_TTL, what=" (0 = never expire)"
    )


def boolean(value: str | None, name: str) -> bool:
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadRequest(f"{name} must be true or false, not {value!r}")


def permissions(value: str) -> tuple[bool, bool]:
    """A token's `permissions` field ("read", "write", "read,write"): (may read, may write)."""
    given = {p.strip().lower() for p in value.split(",") if p.strip()}
    if not given or not given <= {"read", "write"}:
        raise BadRequest("permissions must be read, write or read,write")
    return "read" in given, "write" in given


def delta(body: bytes) -> int:
    """The body of an increment: exactly +N or -N (a bare N counts as +N)."""
    if not _DELTA.fullmatch(body):
        raise BadRequest(
            "an increment body must be exactly +N, -N or N, with no space or newline around it, "
            "e.g. +1"
        )
    if len(body.lstrip(b"+-")) > MAX_DIGITS or not INT64_MIN <= int(body) <= INT64_MAX:
        raise BadRequest("an increment must fit in a 64-bit integer")
    return int(body)


def encode_cursor(last_key: str) -> str:
    return base64.urlsafe_b64encode(last_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        if not _CURSOR.fullmatch(cursor):
            raise ValueError("not unpadded base64url")  # b64decode would take "+", "/" too
        padded = cursor + "=" * (-len(cursor) % 4)
        key = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True).decode()
        if not key:
            raise ValueError("empty cursor")
        return check_prefix(key, "cursor")
    except (binascii.Error, UnicodeError, ValueError, BadRequest):
        raise BadRequest(
            "cursor is not valid: pass the X-Next-Cursor of the previous page"
        ) from None
