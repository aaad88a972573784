"""Limits on the forms that guess-and-try attacks aim at: log in, two-factor codes, sign up, reset a
password.

Past a limit the person gets a page saying when to try again (429 with Retry-After), whether or
not the email has an account and whether or not it is staff's, so a limit reveals nothing.

- Signup and reset count every POST per client address and per email (django-ratelimit).
- Login counts every POST per address, and failures per email: once an email has failed too
  often, only addresses that have not been failing may still try it, so an attacker can lock
  themselves out but never the person who owns the account.
- Two-factor codes (at login, re-authentication and account deletion) count wrong codes per user
  and per address; past either budget even the right code waits for the window to end.

All of it lives in the Django cache (Redis in production) and fails open without it.
"""

import hashlib
import ipaddress
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.shortcuts import render
from django_ratelimit.core import get_usage

logger = logging.getLogger(__name__)

# Budgets of every POST: a person mistyping never meets these; a script trying emails does.
LIMITS = {
    "login": {"ip": "30/10m"},  # 30 login attempts per address per 10 minutes
    "signup": {"ip": "10/h", "email": "3/h"},  # 10 signups per address, 3 per email, an hour
    "reset": {"ip": "10/h", "email": "3/h"},  # 10 resets per address, 3 per email, an hour
}


class TooManyCodes(Exception):
    """A two-factor code was offered past its budget; nothing was checked."""

    def __init__(self, seconds: int):
        super().__init__(f"too many two-factor codes: try again in {seconds} s")
        self.seconds = seconds


@dataclass(frozen=True)
class Budget:
    """At most `limit` counted attempts per `period` seconds for each value (an email, a user id,
    an address), on the Django cache. A window opens with the first attempt counted and lasts
    `period` (not fixed on the clock, so a lock-out never ends a second after it began); a
    lock-out lasts until that window ends.

    An attempt is counted before it is checked and given back if it succeeds: counting after the
    check would let concurrent guesses all pass the check before any was counted. (django-ratelimit
    counts the same way but cannot give an attempt back, and its windows are fixed on the clock.)"""

    name: str
    limit: int
    period: int  # seconds

    def _key(self, value: str) -> str:
        digest = hashlib.sha256(value.encode()).hexdigest()[:32]  # emails never reach Redis
        return f"budget:{self.name}:{digest}"

    def _left(self, key: str, now: float) -> int:
        ends = cache.get(f"{key}:ends")
        return max(1, math.ceil((ends or now + self.period) - now))

    def take(self, value: str) -> "Attempt":
        key, now = self._key(value), time.time()
        # Only the first attempt of a window adds these two, with the window's expiry.
        cache.add(f"{key}:ends", now + self.period, self.period)
        cache.add(key, 0, self.period)
        try:
            count = cache.incr(key)
        except ValueError:  # the window ended between add and incr: let this one through
            return Attempt(key, 0, None)
        # Without the cache, incr answers None: fail open, like the other limits.
        if count is None or count <= self.limit:
            return Attempt(key, count or 0, None)
        return Attempt(key, count, self._left(key, now))

    def spent(self, value: str) -> int:
        """Attempts counted in the current window."""
        return cache.get(self._key(value)) or 0

    def seconds_left(self, value: str) -> int:
        return self._left(self._key(value), time.time())


@dataclass(frozen=True)
class Attempt:
    key: str
    count: int
    wait: int | None  # seconds until the window ends if this attempt was past the budget

    def give_back(self) -> None:
        """Uncount this attempt (it succeeded): the budget counts failures."""
        try:
            cache.decr(self.key)
        except ValueError:  # the window ended meanwhile
            pass


# Wrong passwords (or unknown emails) per email: past it, the email is only tried from addresses
# that have not been failing. 10 failed logins per email per 10 minutes.
LOGIN_FAILURES_PER_EMAIL = Budget("login-failures-email", 10, 600)
# An address past 3 failed logins (on any emails) in 10 minutes is "failing": it may not try an
# email that is over its budget. A person's few typos stay under it.
LOGIN_FAILURES_PER_ADDRESS = Budget("login-failures-address", 3, 600)

# Wrong two-factor codes (TOTP or recovery codes alike): 5 per user per 5 minutes, 20 per address
# per 5 minutes (an office behind one address, each mistyping a few).
CODES_PER_USER = Budget("codes-user", 5, 300)
CODES_PER_ADDRESS = Budget("codes-address", 20, 300)


def client_address(request) -> str:
    """The client's address as the limits count it: an IPv6 client by its /64, which one
    subscriber usually holds whole."""
    address = request.META.get("REMOTE_ADDR", "")
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False).network_address)
    return str(parsed)


def enabled() -> bool:
    return getattr(settings, "RATELIMIT_ENABLE", True)


def _email(request) -> str:
    return request.POST.get("email", request.POST.get("login", "")).strip().lower()


def retry_after(request, action: str) -> int | None:
    """Count this POST against `action`'s budgets; the seconds to wait if over one, else None."""
    if not enabled():
        return None
    email = _email(request)
    # (name, django-ratelimit's key: a name or a function of (group, request), rate)
    checks: list[tuple[str, str | Callable[..., str], str]] = [("ip", "ip", LIMITS[action]["ip"])]
    if email and "email" in LIMITS[action]:
        checks.append(("email", lambda group, request: email, LIMITS[action]["email"]))
    waits = []
    for name, key, rate in checks:
        usage = get_usage(
            request, group=f"web-{action}-{name}", key=key, rate=rate, method="POST", increment=True
        )
        if usage and usage["should_limit"]:
            waits.append(max(1, usage["time_left"]))
    return max(waits) if waits else None


def login_retry_after(request) -> int | None:
    """The seconds to wait before this login may be tried, else None.

    An email past its failures is refused only from addresses that have been failing: the person
    who owns it, on their own address, still logs in with the right password while an attacker
    elsewhere keeps guessing."""
    wait = retry_after(request, "login")
    if wait is not None or not enabled():
        return wait
    email = _email(request)
    if not email:
        return None
    if LOGIN_FAILURES_PER_EMAIL.spent(email) < LOGIN_FAILURES_PER_EMAIL.limit:
        return None
    if LOGIN_FAILURES_PER_ADDRESS.spent(client_address(request)) < LOGIN_FAILURES_PER_ADDRESS.limit:
        return None
    return LOGIN_FAILURES_PER_EMAIL.seconds_left(email)


def count_login_failure(request) -> None:
    if not enabled():
        return
    email = _email(request)
    if email:
        LOGIN_FAILURES_PER_EMAIL.take(email)
    LOGIN_FAILURES_PER_ADDRESS.take(client_address(request))


def take_code_attempt(request, user) -> list[Attempt]:
    """Count a two-factor code about to be checked for `user`; raise TooManyCodes (and check
    nothing) when the user or the address is past its budget. Give the attempts back if the code
    was right."""
    if not enabled():
        return []
    address = client_address(request)
    attempts = [CODES_PER_USER.take(str(user.pk)), CODES_PER_ADDRESS.take(address)]
    waits = [a.wait for a in attempts if a.wait is not None]
    if not waits:
        return attempts
    for budget, attempt in zip((CODES_PER_USER, CODES_PER_ADDRESS), attempts, strict=True):
        if attempt.count == budget.limit + 1:  # the first refusal of this window: log it once
            # Never the code itself: a log must not help anyone guess.
            logger.warning(
                "two-factor codes locked for %s s after %s wrong ones per %s: user %s, address %s",
                attempt.wait,
                budget.limit,
                "user" if budget is CODES_PER_USER else "address",
                user.pk,
                address,
            )
    raise TooManyCodes(max(waits))


def too_many(request, seconds: int):
    minutes = -(-seconds // 60)
    response = render(
        request,
        "429.html",
        {"retry_after": seconds, "retry_minutes": minutes},
        status=429,
    )
    response["Retry-After"] = str(seconds)
    response.thisdb_limit = "accounts"  # type: ignore[attr-defined]  # for thisdb_site.metrics
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


def login_limited(view):
    """allauth's login view, its POSTs limited per address and its failures counted."""

    def wrapped(request, *args, **kwargs):
        if request.method != "POST":
            return view(request, *args, **kwargs)
        wait = login_retry_after(request)
        if wait is not None:
            return too_many(request, wait)
        response = view(request, *args, **kwargs)
        # The form shown again (200) means it was refused: a wrong password, an unknown email or
        # a missing field. Any way past it (the next step, email verification) is a redirect.
        if response.status_code == 200:
            count_login_failure(request)
        return response

    wrapped.__name__ = getattr(view, "__name__", "login")
    return wrapped


def codes_limited(view):
    """An allauth view that checks two-factor codes, answering 429 past their budget."""

    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except TooManyCodes as exc:
            return too_many(request, exc.seconds)

    wrapped.__name__ = getattr(view, "__name__", "codes")
    return wrapped
