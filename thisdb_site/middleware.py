"""Middleware of our own: the /v1/ API's short way through (with its https rules, and outages as
503 pages for the rest), CORS only when a page of another origin asks, the client's address
behind a proxy, and a word to a suspended person whose session was open."""

from corsheaders import middleware as cors_middleware
from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.db import DEFAULT_DB_ALIAS, connections
from django.shortcuts import redirect, resolve_url
from django.urls import get_resolver

from api.dispatch import error_answer
from thisdb_site import outages
from thisdb_site.requestlog import client_address

API_URLCONF = "api.urls"  # the root URLconf includes it at "": the same routes, found sooner
HTTPS_REQUIRED = (
    "https required: this server takes API requests over https only; send this one to "
    "https:// (it went over plain http, where its credentials could be read)"
)


def is_api_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


class ApiMiddleware:
    """/v1/ requests leave the chain here, for their view.

    The API authenticates by header on every request and never uses sessions, CSRF cookies,
    the logged-in user, flash messages or a page's security policy: the middleware after this
    one serves the web pages only, and the API's hot path does not pass through it. (Its views
    are DRF's, which do their own exception handling, and exempt from CSRF.) Only CORS comes
    before it; Django's SecurityMiddleware comes after, so the https settings are applied here
    for /v1/ (both read once, at startup; off, they cost a request nothing):

    - SECURE_SSL_REDIRECT: a /v1/ request over plain http is refused (403, in the API's
      formats), not redirected: it has already carried its key in the clear, and a client that
      follows the redirect would send it again and work, unnoticed.
    - SECURE_HSTS_SECONDS: /v1/ answers over https carry Strict-Transport-Security, as the
      pages' do.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.pooled = bool(settings.DATABASES["default"].get("OPTIONS", {}).get("pool"))
        self.https_only = settings.SECURE_SSL_REDIRECT
        self.hsts = _hsts_value()

    def __call__(self, request):
        try:
            path = request.path_info
            if not is_api_path(path):
                return self.get_response(request)
            if self.https_only or self.hsts:
                return self._answer_by_https_rules(request, path)
            return self._answer(request, path)
        finally:
            if self.pooled:
                self._release()

    def _answer_by_https_rules(self, request, path: str):
        secure = request.is_secure()
        if self.https_only and not secure:
            return error_answer(request, 403, HTTPS_REQUIRED)
        response = self._answer(request, path)
        if self.hsts and secure:
            response["Strict-Transport-Security"] = self.hsts
        return response

    @staticmethod
    def _answer(request, path: str):
        match = get_resolver(API_URLCONF).resolve(path)
        request.resolver_match = match
        return match.func(request, *match.args, **match.kwargs)

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


def _hsts_value() -> str:
    """Strict-Transport-Security as Django's SecurityMiddleware gives it ("": none)."""
    if not settings.SECURE_HSTS_SECONDS:
        return ""
    value = f"max-age={settings.SECURE_HSTS_SECONDS}"
    if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
        value += "; includeSubDomains"
    if settings.SECURE_HSTS_PRELOAD:
        value += "; preload"
    return value


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
        meta = request.META
        forwarded = meta.get("HTTP_X_FORWARDED_FOR")
        if forwarded:
            meta["REMOTE_ADDR"] = client_address(meta.get("REMOTE_ADDR", ""), forwarded, self.count)
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
