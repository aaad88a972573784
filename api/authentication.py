"""X-Api-Key or X-Token: the two ways to call the v1 API."""

from django.conf import settings
from django_ratelimit.core import is_ratelimited
from rest_framework import authentication, exceptions

from api.errors import Forbidden, TooManyRequests
from api.principals import Refused, principal_for_api_key, principal_for_token


class ApiKeyOrTokenAuthentication(authentication.BaseAuthentication):
    """Authenticate by X-Api-Key (preferred when both are sent) or X-Token.

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
        )


def _no_address(group, request) -> str:
    return "no-address"
