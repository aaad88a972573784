"""API errors: a status code and a short message a person can act on, in the asked-for format."""

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status

from api.renderers import ApiResponse, Failure, Message
from thisdb_site import outages

log = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    def __init__(self, message: str):
        super().__init__(detail=message)


class BadRequest(ApiError):
    status_code = status.HTTP_400_BAD_REQUEST


class Forbidden(ApiError):
    status_code = status.HTTP_403_FORBIDDEN


class NotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND


class LengthRequired(ApiError):
    status_code = status.HTTP_411_LENGTH_REQUIRED


class PayloadTooLarge(ApiError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


class PreconditionFailed(ApiError):
    """A conditional write whose condition did not hold (412); `etag` is the key's current ETag,
    None when the key does not exist."""

    status_code = status.HTTP_412_PRECONDITION_FAILED

    def __init__(self, message: str, etag: str | None):
        super().__init__(message)
        self.etag = etag


class TooManyRequests(ApiError):
    """A 429; `reason` names the limit (the metrics count them by it: thisdb_site.metrics)."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS

    def __init__(self, message: str, retry_after: int, reason: str):
        super().__init__(message)
        self.retry_after = retry_after
        self.reason = reason


class ServiceUnavailable(ApiError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class Stopped(ApiError):
    """An import that stopped at a line (or item) of its body: that line's error, its status
    and Retry-After, and `fields` that say where it stopped and what was applied (in JSON beside
    "error", so a client can resume)."""

    def __init__(self, cause: ApiError, message: str, fields: dict[str, int]):
        super().__init__(message)
        self.status_code = cause.status_code
        self.retry_after = getattr(cause, "retry_after", None)
        self.reason = getattr(cause, "reason", None)
        self.fields = fields


def bucket_not_found() -> NotFound:
    return NotFound("bucket not found")


def key_not_found() -> NotFound:
    return NotFound("key not found")


def key_quota_reached(limit: int) -> Forbidden:
    return Forbidden(
        f"key quota reached: this bucket holds {limit} keys, the most your plan allows; "
        "existing keys can still be changed, or delete keys to add new ones"
    )


def exception_handler(exc, context):
    """Render every error as {"error": message} (json/ndjson) or the bare message (text)."""
    if isinstance(exc, Http404):
        exc = NotFound("not found")
    elif isinstance(exc, PermissionDenied):
        exc = Forbidden("permission denied")
    elif outages.is_outage(exc):
        outages.report(exc)
        exc = ServiceUnavailable(outages.API_MESSAGE, outages.RETRY_AFTER_SECONDS)
    if not isinstance(exc, exceptions.APIException):
        return None  # a real bug: let Django log it and answer 500
    if isinstance(exc, exceptions.NotAuthenticated):
        exc.detail = exceptions.ErrorDetail(
            "missing credentials: send your API key in X-Api-Key or a token in X-Token"
        )
    message = _message(exc.detail)
    payload = (
        Failure(message, exc.fields) if isinstance(exc, Stopped) else Message(message, "error")
    )
    response = ApiResponse(payload, exc.status_code)
    if isinstance(exc, exceptions.MethodNotAllowed):
        view = context.get("view")
        if view is not None:
            response["Allow"] = ", ".join(view.allowed_methods)
    if isinstance(exc, PreconditionFailed) and exc.etag is not None:
        response["ETag"] = exc.etag
    retry_after = getattr(exc, "retry_after", None) or getattr(exc, "wait", None)
    if retry_after:
        response["Retry-After"] = str(max(1, int(retry_after)))
    reason = getattr(exc, "reason", None)
    if reason is not None:
        response.thisdb_limit = reason  # type: ignore[attr-defined]  # thisdb_site.metrics
    if isinstance(exc, ServiceUnavailable):
        # Reported once per outage, not per request (Django's private flag; not in its stubs).
        response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def _message(detail) -> str:
    if isinstance(detail, list):
        return "; ".join(_message(d) for d in detail)
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {_message(v)}" for k, v in detail.items())
    return str(detail)
