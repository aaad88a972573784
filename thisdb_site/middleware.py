"""Web-page middleware that steps aside for the /v1/ API.

The API authenticates by header on every request and never uses sessions, CSRF cookies, the
logged-in user, flash messages or a page's security policy, so its hot path does not pay for them.
"""

from csp import middleware as csp_middleware
from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.db import connections
from django.middleware import csrf

from thisdb_site import outages


def is_api_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def skip_for_api(middleware_class):
    """Return a subclass of `middleware_class` that passes /v1/ requests straight through."""

    class SkipForApi(middleware_class):  # type: ignore[valid-type, misc]  # a base known at run time
        def __call__(self, request):
            if is_api_path(request.path_info):
                return self.get_response(request)
            return super().__call__(request)

        def process_view(self, request, callback, callback_args, callback_kwargs):
            if is_api_path(request.path_info) or not hasattr(super(), "process_view"):
                return None
            return super().process_view(request, callback, callback_args, callback_kwargs)

    SkipForApi.__name__ = middleware_class.__name__
    SkipForApi.__qualname__ = middleware_class.__qualname__
    return SkipForApi


SessionMiddleware = skip_for_api(sessions_middleware.SessionMiddleware)
CsrfViewMiddleware = skip_for_api(csrf.CsrfViewMiddleware)
AuthenticationMiddleware = skip_for_api(auth_middleware.AuthenticationMiddleware)
MessageMiddleware = skip_for_api(messages_middleware.MessageMiddleware)
CSPMiddleware = skip_for_api(csp_middleware.CSPMiddleware)


class DatabaseMiddleware:
    """The request's database connection, bounded in time (outermost middleware).

    - A pooled connection goes back to the pool as soon as the answer is ready, not after a
      slow client has read it (Django would wait for request_finished).
    - A view that finds the database unreachable gets the plain 503 page (the API answers its
      own 503 in api.errors; anything else reaches handler500, which does the same).
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.pooled = bool(settings.DATABASES["default"].get("OPTIONS", {}).get("pool"))

    def __call__(self, request):
        try:
            return self.get_response(request)
        finally:
            if self.pooled:
                for connection in connections.all(initialized_only=True):
                    if not connection.in_atomic_block:
                        connection.close()  # back to the pool

    def process_exception(self, request, exception):
        if outages.is_outage(exception):
            outages.report(exception)
            return outages.page_response(request)
        return None


class ForwardedForMiddleware:
    """Behind THISDB_PROXY_COUNT trusted proxies, the client's address is the entry those
    proxies added to X-Forwarded-For, not the last proxy's: it becomes REMOTE_ADDR, which the
    rate limits (wrong keys, logins) count by. Installed only when THISDB_PROXY_COUNT > 0:
    without a proxy in front, the header is the client's to forge."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.count = settings.THISDB_PROXY_COUNT

    def __call__(self, request):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
        if forwarded:
            hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
            if len(hops) >= self.count:
                request.META["REMOTE_ADDR"] = hops[-self.count]
        return self.get_response(request)
