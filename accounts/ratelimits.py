"""Limits on the pages that guess-and-try attacks aim at: log in, sign up, reset a password.

Each form's POSTs are counted per client address and per email address (django-ratelimit on the
Django cache: Redis in production). Past a limit the person gets a page saying when to try again
(429 with Retry-After), whether or not the email has an account, so the limit reveals nothing.
Logins to staff accounts have a stricter limit of their own: they open the admin.
"""

from collections.abc import Callable

from django.conf import settings
from django.shortcuts import render
from django_ratelimit.core import get_usage

# Budgets: a person mistyping never meets these; a script trying passwords or emails does.
LIMITS = {
    "login": {"ip": "30/10m", "email": "10/10m"},
    "signup": {"ip": "10/h", "email": "3/h"},
    "reset": {"ip": "10/h", "email": "3/h"},
}
STAFF_LOGIN_LIMIT = "5/15m"  # per staff email: the admin's stricter limit


def _email(request) -> str:
    return request.POST.get("email", request.POST.get("login", "")).strip().lower()


def _is_staff_email(email: str) -> bool:
    from django.contrib.auth import get_user_model

    return (
        bool(email) and get_user_model().objects.filter(email__iexact=email, is_staff=True).exists()
    )


def retry_after(request, action: str) -> int | None:
    """Count this POST; the seconds to wait if it is over a limit, else None."""
    if not getattr(settings, "RATELIMIT_ENABLE", True):
        return None
    email = _email(request)
    # (name, django-ratelimit's key: a name or a function of (group, request), rate)
    checks: list[tuple[str, str | Callable[..., str], str]] = [("ip", "ip", LIMITS[action]["ip"])]
    if email:
        checks.append(("email", lambda group, request: email, LIMITS[action]["email"]))
        if action == "login" and _is_staff_email(email):
            checks.append(("staff", lambda group, request: email, STAFF_LOGIN_LIMIT))
    waits = []
    for name, key, rate in checks:
        usage = get_usage(
            request, group=f"web-{action}-{name}", key=key, rate=rate, method="POST", increment=True
        )
        if usage and usage["should_limit"]:
            waits.append(max(1, usage["time_left"]))
    return max(waits) if waits else None


def too_many(request, seconds: int):
    minutes = -(-seconds // 60)
    response = render(
        request,
        "429.html",
        {"retry_after": seconds, "retry_minutes": minutes},
        status=429,
    )
    response["Retry-After"] = str(seconds)
    return response


def limited(action: str, view):
    """`view` with its POSTs limited under `action`'s budget."""

    def wrapped(request, *args, **kwargs):
        if request.method == "POST":
            wait = retry_after(request, action)
            if wait is not None:
                return too_many(request, wait)
        return view(request, *args, **kwargs)

    wrapped.__name__ = getattr(view, "__name__", action)
    return wrapped
