"""X-Api-Key or X-Token: the two ways to call the v1 API."""

from rest_framework import authentication

from api.errors import Forbidden
from api.principals import principal_for_api_key, principal_for_token


class ApiKeyOrTokenAuthentication(authentication.BaseAuthentication):
    """Authenticate by X-Api-Key (preferred when both are sent) or X-Token.

    No `authenticate_header`, so DRF answers missing credentials with 403, as the spec says.
    """

    def authenticate(self, request):
        meta = request._request.META
        secret = meta.get("HTTP_X_API_KEY")
        if secret is not None:
            principal = principal_for_api_key(secret.strip())
            if principal is None:
                raise Forbidden("invalid API key: check X-Api-Key, or create a key in your account")
            return principal, None
        token = meta.get("HTTP_X_TOKEN")
        if token is not None:
            principal = principal_for_token(token.strip())
            if principal is None:
                raise Forbidden("invalid or expired token: create a new one with POST /v1/tokens")
            return principal, None
        return None
