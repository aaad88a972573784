"""Middleware of our own: the /v1/ API's short way through (with outages as 503 pages for the
rest), CORS only when a page of another origin asks, the client's address behind a proxy, and
a word to a suspended person whose session was open."""

from corsheaders import middleware as cors_middleware
from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.db import DEFAULT_DB_ALIAS, connections
from django.shortcuts import redirect, resolve_url
from django.urls import get_resolver

from thisdb_site import outages

API_URLCONF = "api.urls"  # the root URLconf includes it at "": the same routes, found sooner


def is_api_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


class ApiMiddleware:
    """/v1/ requests leave the chain here, for their view.

    The API authenticates by header on every request and never uses sessions, CSRF cookies,
    the logged-in user, flash messages or a page's security policy: the middleware after this
    one serves the web pages only, and the API's hot path does not pass through it. (Its views
    are DRF's, which do their own exception handling, and exempt from CSRF.) What comes before
    (the database connection's bounds, CORS, security headers) applies to both.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.pooled = bool(settings.DATABASES["default"].get("OPTIONS", {}).get("pool"))

    def __call__(self, request):
        try:
            path = request.path_info
            if not is_api_path(path):
                return self.get_response(request)
            match = get_resolver(API_URLCONF).resolve(path)
            request.resolver_match = match
            return match.func(request, *match.args, **match.kwargs)
        finally:
            if self.pooled:
                self._release()

    @staticmethod
    def _release() -> None:
        """The pooled connection goes back as soon as the answer is ready, whatever the server
        (Django's request_finished would wait for the server to have sent it all)."""
        connection = connections[DEFAULT_DB_ALIAS]
        if connection.connection is not None and not connection.in_atomic_block:
            connection.close()

    def process_exception(self, request, exception):
        """A page whose view finds the database unreachable gets the plain 503 page (the API
        answers its own 503, api.errors; anything else reaches handler500, which does the
        same)."""
        if outages.is_outage(exception):
            outages.report(exception)
            return outages.page_response(request)
        return None


class CorsMiddleware(cors_middleware.CorsMiddleware):
    """django-cors-headers for requests that come from a page of another origin (they say so in
    Origin); the API's other requests skip it. Every origin may call the API and no answer
    varies by origin ("*", no credentials), so nothing is lost for them."""

    def __call__(self, request):
        if "HTTP_ORIGIN" not in request.META:
            return self.get_response(request)
        return super().__call__(request)


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


class SuspendedSessionMiddleware:
    """A suspended person's session stays open, but Django takes them for anonymous (it never
    loads an inactive user), so a page that needs a login sent them to the login form without a
    word. Send them to the page that says the account is suspended and whom to write, and end
    the session. Only a redirect to the login page pays for this (one query)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.login_path = ""

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code != 302:
            return response
        if not self.login_path:
            self.login_path = resolve_url(settings.LOGIN_URL)
        if not response["Location"].startswith(self.login_path) or request.user.is_authenticated:
            return response
        User = get_user_model()
        try:
            user_id = User._meta.pk.to_python(request.session[SESSION_KEY])
        except (KeyError, ValueError):
            return response  # no session of a person, or not one of ours
        if User.objects.filter(pk=user_id, is_active=False).exists():
            request.session.flush()
            return redirect("account_inactive")
        return response
