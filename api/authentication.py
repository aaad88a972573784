"""X-Api-Key or X-Token: the two ways to call the v1 API; and, for a watch only, a token in the
query string (token=), as a browser's EventSource can send no header."""

from urllib.parse import unquote_plus

from django.conf import settings
from django.http import QueryDict
from django_ratelimit.core import is_ratelimited
from rest_framework import authentication, exceptions

from api import inputs
from api.errors import BadRequest, Forbidden, TooManyRequests
from api.principals import Refused, principal_for_api_key, principal_for_token


class ApiKeyOrTokenAuthentication(authentication.BaseAuthentication):
    """Authenticate by X-Api-Key (preferred when both are sent) or X-Token.

    A watch (GET /v1/<bucket>?watch=true) without either header may carry its token in the
    query string instead (token=, see query_token): an EventSource cannot send headers.

    No `authenticate_header`, so DRF answers missing credentials with 403, as the spec says.
    """

    def authenticate(self, request):
        meta = request._request.META
        secret = meta.get("HTTP_X_API_KEY")
        try:
            if secret is not None:
                principal = principal_for_api_key(secret.strip())
                if principal is None:
                    _count_failure(request)
                    raise Forbidden(
                        "invalid API key: check X-Api-Key, or create a key in your account"
                    )
                return principal, None
            token = meta.get("HTTP_X_TOKEN")
            if token is None:
                token = query_token(request)
            if token is not None:
                principal = principal_for_token(token.strip())
                if principal is None:
                    _count_failure(request)
                    raise Forbidden(
                        "invalid or expired token: create a new one with POST /v1/tokens"
                    )
                return principal, None
        except Refused as refused:
            raise Forbidden(str(refused)) from None
        raise exceptions.NotAuthenticated()  # no credentials at all (the message: api.errors)


def query_token(request) -> str | None:
    """The token= of a watch request (GET /v1/<bucket>?watch=true&token=...), taken out of the
    request: from then on neither its query string nor its parameters hold it, so nothing that
    logs or reports the request (Django's error reports, a log formatter) can show it. None on
    any other request, whose token= is left alone and means nothing."""
    django_request = request._request
    query = django_request.META.get("QUERY_STRING", "")
    if "token" not in query or django_request.method != "GET":
        return None  # the hot path: most requests have no query string
    view = request.parser_context.get("view")
    if not getattr(view, "watch_action", None) or view.action != view.watch_action:
        return None
    params = django_request.GET
    try:
        if not inputs.boolean(params.get("watch"), "watch"):
            return None
    except BadRequest:
        return None  # not a watch (the view says what is wrong with watch=)
    if "token" not in params:
        return None
    token = params.get("token", "")
    kept = [part for part in query.split("&") if unquote_plus(part.split("=", 1)[0]) != "token"]
    rest = "&".join(kept)
    django_request.META["QUERY_STRING"] = rest
    # What Django's WSGIRequest.GET makes of a query string, made again of what is left.
    django_request.GET = QueryDict(rest.encode("iso-8859-1"), encoding=django_request.encoding)
    return token


def _count_failure(request) -> None:
    """Refuse a client IP that keeps sending wrong keys or tokens (someone guessing them).

    Only failures are counted, so valid requests never pay for this round trip.
    """
    django_request = request._request
    limited = is_ratelimited(
        django_request,
        group="api-auth-failures",
        # A server on a Unix socket (or an ASGI one without "client") gives no address, which
        # django-ratelimit's "ip" key cannot read (a 500): such clients share one count.
        key="ip" if django_request.META.get("REMOTE_ADDR") else _no_address,
        rate=settings.THISDB_AUTH_FAILURES_RATE,
        increment=True,
    )
    if limited:
        raise TooManyRequests(
            "too many requests with a wrong API key or token from your address: "
            "wait a minute, then check your credentials",
            retry_after=60,
            reason="wrong_credentials",
        )


def _no_address(group, request) -> str:
    return "no-address"
