"""Views of the site itself: errors that happen outside any app's view, and health probes."""

import sys

from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.defaults import server_error as django_server_error

from api.dispatch import error_answer
from thisdb_site import outages, probes
from thisdb_site.middleware import is_api_path


def ratelimited(request, exception):
    """django-ratelimit's answer for the web pages: 429 (its default is 403)."""
    return HttpResponse(
        "Too many requests: wait a minute and try again.",
        status=429,
        content_type="text/plain; charset=utf-8",
        headers={"Retry-After": "60"},
    )


def server_error(request):
    """handler500: an unreachable database is a 503 wherever it surfaces (a middleware, a
    template), in the API's format on /v1/; anything else stays a 500."""
    exc = sys.exc_info()[1]
    if exc is not None and outages.is_outage(exc):
        outages.report(exc)
        if is_api_path(request.path_info):
            return error_answer(request, 503, outages.API_MESSAGE, outages.RETRY_AFTER_SECONDS)
        return outages.page_response(request)
    if is_api_path(request.path_info):
        return error_answer(request, 500, "internal error: the server failed; retry later")
    return django_server_error(request)


@never_cache
def healthz(request):
    """Liveness: the process answers (no database or Redis asked)."""
    return HttpResponse("ok\n", content_type="text/plain; charset=utf-8")


@never_cache
def readyz(request):
    """Readiness: PostgreSQL and Redis answer; 503 if either does not, with each one's latency."""
    checks = [probes.database(), probes.redis()]
    body = {
        check.name: {"ok": check.ok, "latency_ms": check.latency_ms, "detail": check.detail}
        for check in checks
    }
    ready = all(check.ok for check in checks)
    response = JsonResponse({"ready": ready, **body}, status=200 if ready else 503)
    if not ready:
        response["Retry-After"] = str(outages.RETRY_AFTER_SECONDS)
        # A probe's 503 is its answer, not an error to log
        # (Django's private flag; not in its stubs).
        response._has_been_logged = True  # type: ignore[attr-defined]
    return response
