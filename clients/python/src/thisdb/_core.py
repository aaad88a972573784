"""What the sync and the async client share: configuration, the shape of each call (method, path,
query, body, how to read the answer), error mapping and the retry rule. The two clients differ
only in how they send a request and wait."""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import math
import os
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlencode

import httpx

from thisdb._version import __version__
from thisdb.errors import (
    ConfigurationError,
    Conflict,
    InvalidArgument,
    NotJSON,
    NotTheAPI,
    PreconditionFailed,
    RateLimited,
    Unavailable,
    UnexpectedResponse,
    error_class,
    reason_phrase,
)
from thisdb.models import BucketInfo, BucketPage, Item, KeyPage, OpResult, RateLimit

T = TypeVar("T")

ENV_URL, ENV_API_KEY, ENV_TOKEN = "THISDB_URL", "THISDB_API_KEY", "THISDB_TOKEN"
DEFAULT_TIMEOUT = 10.0
USER_AGENT = f"thisdb-python/{__version__}"
Value = bytes | bytearray | memoryview | str
# A key's version: a whole number, which the API writes as a string (and the client returns so).
Version = str | int


class Credential(httpx.Auth):
    """The API key or token, put on each request as it is sent.

    It is kept here only: not among the client's default headers, out of every repr, and taken
    off each request once it is answered (forget), so the request an error keeps in its
    `response` (or a NetworkError's cause) can be logged or pickled without the secret.
    """

    def __init__(self, header: str, secret: str):
        self.header = header
        self._secret = secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self.header] = self._secret
        yield request

    def forget(self, request: httpx.Request) -> None:
        request.headers.pop(self.header, None)

    def __repr__(self) -> str:
        return f"<{self.header}: redacted>"


@dataclass(frozen=True)
class Settings:
    base_url: str  # always ends in /v1
    headers: dict[str, str]
    credential: Credential


def resolve_settings(api_key: str | None, token: str | None, base_url: str | None) -> Settings:
    """Arguments first, then THISDB_URL / THISDB_API_KEY / THISDB_TOKEN."""
    if api_key is not None and token is not None:
        raise ConfigurationError("pass api_key or token, not both")
    url = base_url if base_url is not None else os.environ.get(ENV_URL, "")
    if not url:
        raise ConfigurationError(
            f"no server: pass base_url= (e.g. 'http://127.0.0.1:8000') or set {ENV_URL}"
        )
    if api_key is None and token is None:
        api_key = os.environ.get(ENV_API_KEY) or None
        token = None if api_key else os.environ.get(ENV_TOKEN) or None
    if not api_key and not token:
        raise ConfigurationError(
            f"no credentials: pass api_key= or token=, or set {ENV_API_KEY} or {ENV_TOKEN}"
        )
    if api_key:
        credential = Credential("X-Api-Key", _credential(api_key, "API key"))
    else:
        credential = Credential("X-Token", _credential(token or "", "token"))
    return Settings(normalize_base_url(url), {"User-Agent": USER_AGENT}, credential)


def _credential(value: str, what: str) -> str:
    value = value.strip()
    if not value.isascii() or not value.isprintable() or " " in value:
        raise ConfigurationError(f"the {what} has characters no key or token has: check it")
    return value


def normalize_base_url(url: str) -> str:
    """`http://host`, `http://host/` and `http://host/v1[/]` all mean `http://host/v1`; a path
    before /v1 (a server mounted under a prefix) is kept."""
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL as exc:
        raise ConfigurationError(f"invalid server URL {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(f"invalid server URL {url!r}: use http://host[:port] or https://")
    if parsed.query or parsed.fragment:
        raise ConfigurationError(f"invalid server URL {url!r}: no query or fragment, please")
    path = parsed.raw_path.decode("ascii").split("?")[0].rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return str(parsed.copy_with(raw_path=path.encode("ascii")))


_DOTS = re.compile(r"\.{1,2}")


def segment(text: str, what: str) -> str:
    """One path segment, percent-encoded: every byte but A-Z a-z 0-9 - . _ ~ ('/' included).

    A segment of only "." or ".." would be removed by URL normalization (in httpx and in
    proxies), so its dots are encoded too.
    """
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, not {type(text).__name__}")
    if not text:
        raise InvalidArgument(f"{what} cannot be empty")
    if _DOTS.fullmatch(text):
        return "%2E" * len(text)
    return quote(text, safe="")


def to_bytes(value: Value) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"a value must be bytes or str, not {type(value).__name__}")


def _whole(value: int, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return str(value)


def permissions_text(permissions: str | Iterable[str]) -> str:
    if isinstance(permissions, str):
        return permissions
    return ",".join(permissions)


# A request's body: bytes, or chunks sent as they come (a streamed upload, chunked), which can
# be sent once only: a call with such a body is never retried.
Body = bytes | Iterator[bytes] | AsyncIterator[bytes]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call: what to send and how to read a successful answer."""

    method: str
    path: str  # below /v1, already encoded: "/", "/<bucket>", "/<bucket>/<key>", "/tokens"
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, str] | None = None
    body: Body | None = None
    content_type: str | None = None
    headers: Mapping[str, str] | None = None
    not_modified: bool = False  # a 304 answer is passed to `parse` (a GET with If-None-Match)
    wait: float = 0  # seconds the server may hold the answer (a long-poll), added to the timeout

    @property
    def replayable(self) -> bool:
        """Whether the request can be sent again (a retry): not with a streamed body."""
        return self.body is None or isinstance(self.body, bytes)


def _form(fields: Mapping[str, str]) -> bytes:
    return urlencode(fields).encode("ascii")


FORM = "application/x-www-form-urlencoded"
OCTETS = "application/octet-stream"


# --- the calls, named after the official SDKs ----------------------------------------------


def create_bucket(default_ttl: int | None) -> Call[str]:
    fields = {} if default_ttl is None else {"default_ttl": _whole(default_ttl, "default_ttl")}
    return Call("POST", "/", _text_word, body=_form(fields), content_type=FORM)


def update_bucket(bucket: str, default_ttl: int) -> Call[None]:
    fields = {"default_ttl": _whole(default_ttl, "default_ttl")}
    path = "/" + segment(bucket, "bucket")
    return Call("PATCH", path, _ok, body=_form(fields), content_type=FORM)


def delete_bucket(bucket: str) -> Call[None]:
    return Call("DELETE", "/" + segment(bucket, "bucket"), _ok)


def list_buckets(limit: int | None, cursor: str | None) -> Call[BucketPage]:
    # GET /v1/ is an addition to the published v1 API: servers without it answer 405.
    params = {"format": "json"}
    if limit is not None:
        params["limit"] = _whole(limit, "limit")
    if cursor:
        params["cursor"] = cursor
    return Call("GET", "/", _bucket_page, params=params)


def list_keys(
    bucket: str,
    prefix: str | None,
    limit: int | None,
    values: bool,
    cursor: str | None,
) -> Call[KeyPage]:
    params = {"format": "json"}
    if prefix:
        params["prefix"] = prefix
    if limit is not None:
        params["limit"] = _whole(limit, "limit")
    if values:
        params["values"] = "true"
    if cursor:
        params["cursor"] = cursor
    return Call("GET", "/" + segment(bucket, "bucket"), _key_page, params=params)


def get(bucket: str, key: str) -> Call[bytes]:
    # The text format answers with the stored bytes as they are (no base64, no JSON to parse),
    # which is exact and the cheapest for large values.
    return Call("GET", _item_path(bucket, key), _content)


def get_versioned(bucket: str, key: str) -> Call[tuple[bytes, str]]:
    return Call("GET", _item_path(bucket, key), _versioned(_content))


def get_if_changed(bucket: str, key: str, version: Version) -> Call[tuple[bytes, str] | None]:
    headers = {"If-None-Match": _etag(version)}
    return Call(
        "GET",
        _item_path(bucket, key),
        _changed,
        headers=headers,
        not_modified=True,
    )


def set(
    bucket: str,
    key: str,
    value: Value,
    ttl: int | None,
    condition: Mapping[str, str] | None = None,
) -> Call[None]:
    return _set(bucket, key, value, ttl, condition, _ok)


def set_versioned(
    bucket: str, key: str, value: Value, ttl: int | None, condition: Mapping[str, str] | None
) -> Call[str]:
    return _set(bucket, key, value, ttl, condition, _new_version)


def _set(
    bucket: str,
    key: str,
    value: Value,
    ttl: int | None,
    condition: Mapping[str, str] | None,
    parse: Callable[[httpx.Response], T],
) -> Call[T]:
    params = None if ttl is None else {"ttl": _whole(ttl, "ttl")}
    return Call(
        "POST",
        _item_path(bucket, key),
        parse,
        params=params,
        body=to_bytes(value),
        content_type=OCTETS,
        headers=condition or None,
    )


def increment(
    bucket: str,
    key: str,
    by: int,
    ttl: int | None,
    condition: Mapping[str, str] | None = None,
) -> Call[int]:
    return _increment(bucket, key, by, ttl, condition, _integer)


def increment_versioned(
    bucket: str, key: str, by: int, ttl: int | None, condition: Mapping[str, str] | None
) -> Call[tuple[int, str]]:
    return _increment(bucket, key, by, ttl, condition, _versioned(_integer))


def _increment(
    bucket: str,
    key: str,
    by: int,
    ttl: int | None,
    condition: Mapping[str, str] | None,
    parse: Callable[[httpx.Response], T],
) -> Call[T]:
    params = None if ttl is None else {"ttl": _whole(ttl, "ttl")}
    delta = f"{int(_whole(by, 'by')):+d}".encode("ascii")
    return Call(
        "PATCH",
        _item_path(bucket, key),
        parse,
        params=params,
        body=delta,
        content_type="text/plain",
        headers=condition or None,
    )


def delete(bucket: str, key: str, condition: Mapping[str, str] | None = None) -> Call[None]:
    return Call("DELETE", _item_path(bucket, key), _ok, headers=condition or None)


def create_token(bucket: str, prefix: str, permissions: str | Iterable[str], ttl: int) -> Call[str]:
    fields = {
        "bucket": bucket,
        "prefix": prefix,
        "permissions": permissions_text(permissions),
        "ttl": _whole(ttl, "ttl"),
    }
    return Call("POST", "/tokens", _text_word, body=_form(fields), content_type=FORM)


def _item_path(bucket: str, key: str) -> str:
    return f"/{segment(bucket, 'bucket')}/{segment(key, 'key')}"


# --- versions and conditions -----------------------------------------------------------------


def version_text(version: Version) -> str:
    """A version as the API writes it. Versions are opaque to the client, but one goes inside
    the quotes of an entity tag, so it cannot hold a quote, a comma (which separates tags in
    If-Match) or white space."""
    if isinstance(version, bool) or not isinstance(version, str | int):
        raise TypeError(f"a version must be a str or an int, not {type(version).__name__}")
    text = str(version)
    if not text or not text.isascii() or not text.isprintable() or any(c in text for c in '", '):
        raise InvalidArgument(f"not a version: {text!r}")
    return text


def _etag(version: Version) -> str:
    return f'"{version_text(version)}"'


def conditions(
    if_version: Version | Iterable[Version] | None = None,
    if_absent: bool = False,
    if_exists: bool = False,
) -> dict[str, str]:
    """The headers of a conditional write: If-Match with the versions the key may be at (or `*`:
    it must exist), or If-None-Match: * (it must not exist). At most one condition."""
    given = (if_version is not None) + bool(if_absent) + bool(if_exists)
    if given > 1:
        raise InvalidArgument("give one of if_version, if_absent and if_exists")
    if if_absent:
        return {"If-None-Match": "*"}
    if if_exists:
        return {"If-Match": "*"}
    if if_version is None:
        return {}
    if isinstance(if_version, bytes | bytearray):
        raise TypeError("a version must be a str or an int, not bytes")
    versions = [if_version] if isinstance(if_version, str | int) else list(if_version)
    if not versions:
        raise InvalidArgument("if_version: give at least one version")
    return {"If-Match": ", ".join(_etag(version) for version in versions)}


def etag_version(response: httpx.Response) -> str | None:
    """The version in an answer's ETag (`"17"`, or weak `W/"17"`), None without one."""
    etag = response.headers.get("ETag")
    if etag is None:
        return None
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"') or None


def _new_version(response: httpx.Response) -> str:
    version = etag_version(response)
    if version is None:
        raise UnexpectedResponse(
            "the answer has no ETag: this server does not keep versions of keys", response
        )
    return version


def _versioned(parse: Callable[[httpx.Response], T]) -> Callable[[httpx.Response], tuple[T, str]]:
    def both(response: httpx.Response) -> tuple[T, str]:
        return parse(response), _new_version(response)

    return both


def _changed(response: httpx.Response) -> tuple[bytes, str] | None:
    if response.status_code == 304:
        return None
    return response.content, _new_version(response)


# --- transactions ----------------------------------------------------------------------------


class TransactionBody:
    """The checks and operations of a transaction, as the JSON body of POST /v1/<bucket>.

    Each method returns the index of what it added: a check's index is what Conflict.failed
    names, an operation's the place of its result.
    """

    def __init__(self, bucket: str):
        self.path = "/" + segment(bucket, "bucket")
        self.checks: list[dict[str, Any]] = []
        self.ops: list[dict[str, Any]] = []

    def check(self, key: str, version: Version | None) -> int:
        """The key must be at `version`, or with None, must not exist."""
        segment(key, "key")
        self.checks.append(
            {"key": key, "version": None if version is None else version_text(version)}
        )
        return len(self.checks) - 1

    def set(self, key: str, value: Value, ttl: int | None = None) -> int:
        """Store `value`: a str goes as text; bytes go as base64, so any byte survives JSON."""
        op: dict[str, Any] = {"op": "set", "key": _key(key)}
        if isinstance(value, str):
            to_bytes(value)  # refuses what UTF-8 cannot carry, as set() does
            op["value"] = value
        else:
            op["value"] = base64.b64encode(to_bytes(value)).decode("ascii")
            op["encoding"] = "base64"
        if ttl is not None:
            op["ttl"] = int(_whole(ttl, "ttl"))
        return self._add(op)

    def increment(self, key: str, by: int = 1) -> int:
        return self._add({"op": "increment", "key": _key(key), "by": int(_whole(by, "by"))})

    def delete(self, key: str) -> int:
        return self._add({"op": "delete", "key": _key(key)})

    def get(self, key: str) -> int:
        return self._add({"op": "get", "key": _key(key)})

    def count(self, prefix: str) -> int:
        return self._add({"op": "count", "prefix": _prefix(prefix)})

    def delete_prefix(self, prefix: str) -> int:
        return self._add({"op": "delete_prefix", "prefix": _prefix(prefix)})

    def _add(self, op: dict[str, Any]) -> int:
        self.ops.append(op)
        return len(self.ops) - 1

    def document(self) -> dict[str, Any]:
        return {"checks": list(self.checks), "ops": list(self.ops)}

    def call(self) -> Call[list[OpResult]]:
        kinds = [op["op"] for op in self.ops]
        return Call(
            "POST",
            self.path,
            lambda response: op_results(response, kinds),
            params={"format": "json"},  # a conflict's details come only in JSON
            body=dumps_json(self.document()),
            content_type="application/json",
        )


def _key(key: str) -> str:
    segment(key, "key")  # a str, not empty: as every other call refuses
    return key


def _prefix(prefix: str) -> str:
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
    return prefix


def op_results(response: httpx.Response, kinds: list[str]) -> list[OpResult]:
    """The results of a committed transaction, one per operation (`kinds`: each one's "op")."""
    data = _json(response)
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list) or len(results) != len(kinds):
        raise UnexpectedResponse(
            f"expected a JSON object with {len(kinds)} results, got {_excerpt(response)!r}",
            response,
        )
    parsed = []
    for index, (kind, entry) in enumerate(zip(kinds, results, strict=True)):
        try:
            parsed.append(_op_result(kind, entry))
        except (ValueError, TypeError) as exc:
            raise UnexpectedResponse(f"result {index} ({kind}): {exc}", response) from None
    return parsed


def _op_result(kind: str, entry: Any) -> OpResult:
    if not isinstance(entry, dict):
        raise ValueError("not a JSON object")
    key, prefix = entry.get("key"), entry.get("prefix")
    version = _listed_version(entry.get("version"))
    value: bytes | int | None = None
    if kind == "get" and entry.get("value") is not None:
        value = decode_value(entry)
    elif kind == "increment":
        value = _number(entry.get("value"), "value")
    deleted = entry.get("deleted")
    if kind == "delete" and not isinstance(deleted, bool):
        raise ValueError("deleted is not true or false")
    if kind == "delete_prefix":
        deleted = _number(deleted, "deleted")
    count = _number(entry.get("count"), "count") if kind == "count" else None
    return OpResult(
        kind,
        key=key if isinstance(key, str) else None,
        prefix=prefix if isinstance(prefix, str) else None,
        value=value,
        version=version,
        deleted=deleted if isinstance(deleted, bool | int) else None,
        count=count,
    )


def _number(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} is not a whole number")
    return value


def _listed_version(value: Any) -> str | None:
    """A version in JSON: a string (a server may write the number itself)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value)


def _conflict(response: httpx.Response) -> tuple[list[int], dict[str, str | None], str]:
    """A 409's failed checks, the current versions of their keys (as far as the body gives
    them), and a message: the server's "error", else one in words."""
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError):
        data = None
    data = data if isinstance(data, dict) else {}
    failed = data.get("failed")
    indexes = [i for i in failed if type(i) is int] if isinstance(failed, list) else []
    versions = data.get("versions")
    current = (
        {k: _listed_version(v) for k, v in versions.items()} if isinstance(versions, dict) else {}
    )
    message = data.get("error")
    if not isinstance(message, str):
        which = ", ".join(str(index) for index in indexes)
        checks = "checks" if len(indexes) > 1 else "check"
        message = f"{checks} {which or '?'} did not hold: nothing was applied"
    return indexes, current, message


# --- reading answers -------------------------------------------------------------------------


def raw(response: httpx.Response) -> httpx.Response:
    return response


def _ok(response: httpx.Response) -> None:
    return None  # 200 is success; the body ("OK") carries nothing more


def _content(response: httpx.Response) -> bytes:
    return response.content


def _text_word(response: httpx.Response) -> str:
    text = response.text.strip()
    if not text or any(c.isspace() for c in text):
        raise UnexpectedResponse(f"expected an id, got {_excerpt(response)!r}", response)
    return text


def _integer(response: httpx.Response) -> int:
    text = response.text.strip()
    try:
        return int(text)
    except ValueError:
        raise UnexpectedResponse(
            f"expected a number, got {_excerpt(response)!r}", response
        ) from None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        raise UnexpectedResponse(f"expected JSON, got {_excerpt(response)!r}", response) from None


def decode_value(entry: Mapping[str, Any]) -> bytes:
    """The bytes of a JSON value: text, or base64 when it says "encoding": "base64"."""
    value = entry.get("value")
    if not isinstance(value, str):
        raise ValueError("a value must be a JSON string")
    if entry.get("encoding") == "base64":
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ValueError("invalid base64 value") from None
    return value.encode("utf-8")


def encode_value(value: bytes) -> dict[str, str]:
    """A value in JSON the way the API writes it: text if UTF-8, else base64 and says so."""
    try:
        return {"value": value.decode("utf-8")}
    except UnicodeDecodeError:
        return {"value": base64.b64encode(value).decode("ascii"), "encoding": "base64"}


def _key_page(response: httpx.Response) -> KeyPage:
    data = _json(response)
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise UnexpectedResponse("expected a JSON object with items", response)
    items = [listed_item(entry, response) for entry in data["items"]]
    cursor = data.get("next_cursor") or response.headers.get("X-Next-Cursor") or None
    return KeyPage(items, cursor if isinstance(cursor, str) else None)


def listed_item(entry: Any, response: httpx.Response) -> Item:
    """One key of a listing (an item of the JSON listing, a line of the NDJSON one or of an
    export): key, value (decoded from base64 when it says so), ttl and version."""
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
        raise UnexpectedResponse("a listed item has no key", response)
    try:
        value = decode_value(entry) if "value" in entry else None
    except ValueError as exc:
        raise UnexpectedResponse(f"key {entry['key']!r}: {exc}", response) from None
    ttl = entry.get("ttl")
    ttl = ttl if isinstance(ttl, int) and not isinstance(ttl, bool) else None
    return Item(entry["key"], value, ttl, _listed_version(entry.get("version")))


def _bucket_page(response: httpx.Response) -> BucketPage:
    data = _json(response)
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise UnexpectedResponse("expected a JSON object with items", response)
    items = []
    for entry in data["items"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("bucket"), str):
            raise UnexpectedResponse("a listed bucket has no id", response)
        figures: list[int] = []
        for name in ("default_ttl", "keys", "bytes"):
            number = entry.get(name)
            if isinstance(number, bool) or not isinstance(number, int):
                raise UnexpectedResponse(
                    f"bucket {entry['bucket']!r}: {name} is not a whole number", response
                )
            figures.append(number)
        items.append(BucketInfo(entry["bucket"], *figures))
    cursor = data.get("next_cursor") or response.headers.get("X-Next-Cursor") or None
    return BucketPage(items, cursor if isinstance(cursor, str) else None)


def _excerpt(response: httpx.Response, size: int = 200) -> str:
    text = response.content[:size].decode("utf-8", "replace").strip()
    return text + ("..." if len(response.content) > size else "")


def error_message(response: httpx.Response) -> str:
    """The server's message: {"error": ...} in JSON, else the text, else the reason phrase."""
    content_type = response.headers.get("Content-Type", "")
    if "json" in content_type:
        try:
            data = response.json()
        except (ValueError, UnicodeDecodeError):
            data = None
        message = data.get("error") if isinstance(data, dict) else None
        if isinstance(message, str):
            return message
    if content_type.startswith("text/html"):
        return response.reason_phrase or "error"  # a proxy's or framework's page: not for people
    return _excerpt(response) or response.reason_phrase or "error"


def retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """Retry-After in seconds (whole seconds or an HTTP date), None if absent or unreadable."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# The media types of the API's three formats: every answer of the API carries one of them, errors
# and empty bodies included (api/renderers.py; the spec's formats text, json and ndjson).
API_MEDIA_TYPES = frozenset({"text/plain", "application/json", "application/x-ndjson"})


def media_type(response: httpx.Response) -> str:
    content_type: str = response.headers.get("Content-Type", "")
    return content_type.split(";")[0].strip().lower()


def check(
    response: httpx.Response, base_url: str = "", not_modified: bool = False
) -> httpx.Response:
    """The response if it is a success (or with `not_modified`, a 304), else the exception for
    its status.

    An answer that is not the API's is NotTheAPI, a configuration error: the API never
    redirects, and answers 2xx and 4xx in one of its formats. A 429 or 5xx of another type
    stays a rate limit or a server error (a proxy in front may answer those for the API).
    """
    status = response.status_code
    base = f" {base_url}" if base_url else ""
    if status == 304 and not_modified:
        return response  # asked for with If-None-Match: "unchanged", and a 304 has no body
    if 300 <= status < 400:
        where = response.headers.get("Location", "elsewhere")
        raise NotTheAPI(
            f"the server answered {status} (to {where}), which the ThisDB API never does: "
            f"check the base URL{base} (https?, host, port, path)",
            response,
        )
    if status < 500 and status != 429 and media_type(response) not in API_MEDIA_TYPES:
        kind = media_type(response) or "no Content-Type"
        raise NotTheAPI(
            f"{response.url} answered {status} {reason_phrase(status)} in {kind}, not like a "
            f"ThisDB v1 API: check the base URL{base} (host, port, path) or the proxy in front",
            response,
        )
    if status < 300:
        return response
    cls = error_class(status)
    message = error_message(response)
    if cls is RateLimited:
        raise RateLimited(status, message, response, retry_after(response))
    if cls is Unavailable:
        raise Unavailable(status, message, response, retry_after(response))
    if cls is PreconditionFailed:
        raise PreconditionFailed(status, message, response, etag_version(response))
    if cls is Conflict:
        failed, versions, said = _conflict(response)
        raise Conflict(status, said, response, failed, versions)
    raise cls(status, message, response)


def rate_limit(response: httpx.Response) -> RateLimit | None:
    headers = response.headers
    try:
        return RateLimit(
            int(headers["X-RateLimit-Limit"]),
            int(headers["X-RateLimit-Remaining"]),
            int(headers["X-RateLimit-Reset"]),
        )
    except (KeyError, ValueError):
        return None


# Jitter: clients refused together (a burst past the per-key write limit, a restart behind a
# 503) must not all come back at the same instant. What Retry-After asks is a minimum, so up to
# a quarter more (at most 1 s) is added to it; the backoff without it is drawn between half and
# all of 0.5 s, 1 s, 2 s, ...
RETRY_AFTER_JITTER = 0.25  # of the wait asked for, at most MAX_JITTER seconds
MAX_JITTER = 1.0


@dataclass(frozen=True)
class RetryPolicy:
    """Retry 429 and 503 up to `retries` times, waiting what Retry-After asks (plus jitter), or
    a backoff of 0.25-0.5 s, 0.5-1 s, 1-2 s, ... when it does not say; but a wait the server
    asks for longer than `max_wait` is raised at once (the hourly limit). Nothing else is
    retried."""

    retries: int = 0
    max_wait: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int):
            raise ConfigurationError(f"retries must be a whole number, not {self.retries!r}")
        if self.retries < 0:
            raise ConfigurationError(f"retries must be 0 (no retries) or more, not {self.retries}")
        if not _seconds(self.max_wait) or self.max_wait < 0:
            raise ConfigurationError(
                f"max_retry_wait must be a number of seconds >= 0, not {self.max_wait!r}"
            )

    def delay(self, response: httpx.Response, attempt: int) -> float | None:
        if attempt >= self.retries or response.status_code not in (429, 503):
            return None
        asked = retry_after(response)
        if asked is None:
            backoff = 0.5 * 2**attempt
            return random.uniform(backoff / 2, backoff)
        if asked > self.max_wait:
            return None
        return asked + random.uniform(0, min(MAX_JITTER, asked * RETRY_AFTER_JITTER))


def raw_call(
    method: str,
    path: str,
    params: Mapping[str, str] | None,
    content: bytes | None,
    content_type: str | None,
) -> Call[httpx.Response]:
    """Any request below /v1; `path` starts with "/" and is sent as it is (encode it yourself)."""
    if not path.startswith("/"):
        raise InvalidArgument(f'path must start with "/" (below /v1), not {path!r}')
    return Call(method.upper(), path, raw, params=params, body=content, content_type=content_type)


def build_request(
    http: httpx.Client | httpx.AsyncClient, base: str, call: Call[Any]
) -> httpx.Request:
    headers = dict(call.headers or {})
    if call.content_type:
        headers["Content-Type"] = call.content_type
    request = http.build_request(
        call.method,
        base + call.path,
        params=dict(call.params) if call.params else None,
        content=call.body,
        headers=headers or None,
    )
    if call.wait:
        # The server answers a long-poll only when something happens or its wait is over: the
        # client's read timeout counts from then.
        timeout = http.timeout
        read = None if timeout.read is None else timeout.read + call.wait
        request.extensions["timeout"] = httpx.Timeout(
            connect=timeout.connect, read=read, write=timeout.write, pool=timeout.pool
        ).as_dict()
    return request


def _seconds(value: object) -> bool:
    """A finite number (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def make_timeout(timeout: float | httpx.Timeout | None) -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if timeout is None:
        return httpx.Timeout(DEFAULT_TIMEOUT)
    # 0 would fail every request at once; None inside httpx.Timeout means "wait forever".
    if not _seconds(timeout) or timeout <= 0:
        raise ConfigurationError(
            f"timeout must be a number of seconds > 0 (or an httpx.Timeout), not {timeout!r}"
        )
    return httpx.Timeout(timeout)


def dumps_json(obj: Any) -> bytes:
    """Compact UTF-8 JSON; NaN and Infinity are refused, as JSON has no such numbers (Python's
    default would write them as bare NaN, which no other JSON reader takes)."""
    try:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise InvalidArgument(f"cannot store this as JSON: {exc}") from None
    return text.encode("utf-8")


def loads_json(value: bytes) -> Any:
    """A stored value decoded as JSON; NotJSON if it is not."""
    try:
        return json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotJSON(f"the value is not JSON: {exc}") from None


_TIMEOUT_PHASES: dict[type[httpx.TimeoutException], tuple[str, str]] = {
    httpx.ConnectTimeout: ("connect", "could not connect"),
    httpx.ReadTimeout: ("read", "no answer"),
    httpx.WriteTimeout: ("write", "could not send the request"),
    httpx.PoolTimeout: ("pool", "no free connection"),
}


def describe_network_error(exc: httpx.RequestError) -> str:
    """What went wrong, for people: a timeout says which wait ran out and how long it was."""
    if isinstance(exc, httpx.TimeoutException):
        phase, what = _TIMEOUT_PHASES.get(type(exc), ("read", "no answer"))
        try:
            seconds = exc.request.extensions["timeout"][phase]
        except (RuntimeError, KeyError, TypeError):
            seconds = None
        within = f" within {seconds:g} s" if isinstance(seconds, int | float) else ""
        return f"timed out: {what}{within}"
    return str(exc) or type(exc).__name__
