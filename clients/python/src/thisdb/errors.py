"""Exceptions of the ThisDB client: one class per status the API answers with, each carrying the
server's own message, and one for the network."""

from __future__ import annotations

from http import HTTPStatus

import httpx


class ThisDBError(Exception):
    """Base class of every error this package raises."""


class ConfigurationError(ThisDBError, ValueError):
    """The client cannot be used as configured (no server URL, key and token both given, ...)."""


class NetworkError(ThisDBError):
    """The server could not be reached or did not answer in time (no answer was read).

    The request may or may not have been carried out: an increment that timed out may have
    counted. The httpx exception is the `__cause__`.
    """


class UnexpectedResponse(ThisDBError):
    """The server answered, but not in the shape of the ThisDB v1 API (a redirect, an HTML
    page from a proxy, a malformed body)."""

    def __init__(self, message: str, response: httpx.Response | None = None):
        super().__init__(message)
        self.response = response


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
    411: LengthRequired,
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
