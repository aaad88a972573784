"""Exceptions of the ThisDB client: one class per status the API answers with, each carrying the
server's own message, and one for the network."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import httpx


class ThisDBError(Exception):
    """Base class of every error this package raises.

    Every one pickles and copies with its attributes (status, message, response, retry_after),
    so it can cross a process pool or a task queue. Its `response.request` never carries the
    API key or token (the client takes it off before raising).
    """

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own __reduce__ calls the class again with `self.args`, which are not the
        # arguments of __init__ here (ApiError's args hold only its formatted text), so
        # unpickling raised TypeError. Rebuild without __init__ and restore the attributes.
        return (_rebuild, (type(self), self.args), self.__dict__)


def _rebuild(cls: type[ThisDBError], args: tuple[Any, ...]) -> ThisDBError:
    return cls.__new__(cls, *args)


class ConfigurationError(ThisDBError, ValueError):
    """The client cannot be used as configured (no server URL, key and token both given, a
    retries or timeout out of range, a base URL that does not lead to the API, ...)."""


class InvalidArgument(ThisDBError, ValueError):
    """An argument refused before any request: an empty bucket or key, a path not below /v1,
    an object set_json cannot write as JSON (NaN, Infinity)."""


class NotJSON(ThisDBError, ValueError):
    """get_json: the stored value is not JSON (or not UTF-8)."""


class ClientClosed(ThisDBError, RuntimeError):
    """The client was used after close() / aclose() (or after its `with` block)."""


class NetworkError(ThisDBError):
    """The server could not be reached or did not answer in time (no answer was read).

    The request may or may not have been carried out: an increment that timed out may have
    counted. The httpx exception is the `__cause__`.
    """


class WatchCancelled(ThisDBError):
    """The server ended a watch for good, so the client does not reconnect: `reason` is
    "revoked" (the token), "suspended" (the account), "bucket_deleted" or "expired" (the
    token's time ran out). `position` is the last one the watch had seen."""

    def __init__(self, reason: str, position: str | None = None):
        super().__init__(f"the server ended the watch: {reason}")
        self.reason = reason
        self.position = position


class ImportStopped(ThisDBError):
    """`import_items` stopped before the end of its items: the first `applied` of them were
    imported, and item number `line` (counted from 1) was not, nor any after it. Go on with
    the items after the first `applied` (importing one again is harmless: it is written
    again).

    `error` says why: BadRequest (the server refused that line: a key too long, a bad value),
    InvalidArgument (an item the client could not send: no key, a value neither bytes nor
    str), RateLimited (out of requests: `error.retry_after`), Forbidden (a token outside its
    prefix), NotFound (no such bucket), NetworkError (the connection broke: the items after
    `applied` may or may not have been imported), ...
    """

    def __init__(self, error: ThisDBError, line: int, applied: int):
        super().__init__(f"stopped at line {line} ({applied} imported before it): {error}")
        self.error = error
        self.line = line
        self.applied = applied


class UnexpectedResponse(ThisDBError):
    """The server answered, but not in the shape of the ThisDB v1 API (a redirect, an HTML
    page from a proxy, a malformed body)."""

    def __init__(self, message: str, response: httpx.Response | None = None):
        super().__init__(message)
        self.response = response


class NotTheAPI(ConfigurationError, UnexpectedResponse):
    """The answer did not come from a ThisDB v1 API: the base URL leads elsewhere (a wrong path,
    host or port, http for https) or a proxy answered in its place.

    Every answer of the API is 2xx, 4xx or 5xx with a Content-Type of one of its three formats
    (text/plain, application/json, application/x-ndjson). A redirect, or a 2xx or 4xx (but 429)
    answer of another type (an HTML page, none at all) is this error, never a value and never
    NotFound. A 429 or 5xx of another type is still RateLimited or ServerError: a proxy may
    well answer those for the API.
    """


class ApiError(ThisDBError):
    """The API refused the request: `status` is the HTTP status, `message` the server's words."""

    status: int

    def __init__(self, status: int, message: str, response: httpx.Response | None = None):
        self.status = status
        self.message = message
        self.response = response
        super().__init__(f"{status} {reason_phrase(status)}: {message}")


class BadRequest(ApiError):
    """400: the request is invalid (a malformed ttl, a key too long, not an integer, ...)."""


class Forbidden(ApiError):
    """403 (or 401): wrong or missing credentials, a token out of its scope, or a quota."""


class NotFound(ApiError):
    """404: no such bucket (or not yours), or no such key (or expired)."""


class MethodNotAllowed(ApiError):
    """405: the endpoint does not take this method."""


class NotAcceptable(ApiError):
    """406: the server cannot answer in the format asked for."""


class LengthRequired(ApiError):
    """411: the server cannot read a body without Content-Length."""


class PayloadTooLarge(ApiError):
    """413: the value is larger than the server takes (1 MiB on the platform)."""


class Conflict(ApiError):
    """409: a transaction's checks did not hold, so none of its operations was applied.

    `failed` holds the indexes of the checks that failed (in the order they were added),
    `versions` the current version of each key the checks named (None: the key does not
    exist), so a caller can read again and retry.
    """

    def __init__(
        self,
        status: int,
        message: str,
        response: httpx.Response | None = None,
        failed: list[int] | None = None,
        versions: dict[str, str | None] | None = None,
    ):
        super().__init__(status, message, response)
        self.failed = failed if failed is not None else []
        self.versions = versions if versions is not None else {}


class PreconditionFailed(ApiError):
    """412: a conditional write (if_version, if_absent, if_exists) found the key otherwise, and
    changed nothing. `version` is the key's current version (None: the key does not exist)."""

    def __init__(
        self,
        status: int,
        message: str,
        response: httpx.Response | None = None,
        version: str | None = None,
    ):
        super().__init__(status, message, response)
        self.version = version


class RateLimited(ApiError):
    """429: past the hourly request limit, or a second write to a key within a second.

    `retry_after` is how many seconds the server asks to wait (None if it did not say).
    """

    def __init__(
        self,
        status: int,
        message: str,
        response: httpx.Response | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(status, message, response)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: the server failed to carry out the request."""


class Unavailable(ServerError):
    """503: the server is temporarily unable to serve; `retry_after` as for RateLimited."""

    def __init__(
        self,
        status: int,
        message: str,
        response: httpx.Response | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(status, message, response)
        self.retry_after = retry_after


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Forbidden,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    406: NotAcceptable,
    409: Conflict,
    411: LengthRequired,
    412: PreconditionFailed,
    413: PayloadTooLarge,
    429: RateLimited,
    503: Unavailable,
}


def reason_phrase(status: int) -> str:
    """The standard phrase of an HTTP status ("Not Found")."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_class(status: int) -> type[ApiError]:
    """The exception class of an HTTP error status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else ApiError
