"""The security log: each account's logins, failed logins, API keys, tokens and settings changes,
with when and from where (accounts.models.SecurityEvent).

`record` is the one way an event is written. Call it inside the transaction of the change it
records, so that both are kept or neither: a change rolled back leaves no event, and an event
that cannot be written undoes its change. Beat prunes events older than
THISDB_SECURITY_LOG_DAYS (`prune`).
"""

import ipaddress
import time
from datetime import datetime, timedelta

from django.conf import settings

from accounts.models import SecurityEvent

Kind = SecurityEvent.Kind

# What an event may say beyond its kind. A closed list, so that no caller can slip a password,
# a key, a token or a recovery code in: a key is named by its visible prefix and its name only.
DETAIL_FIELDS = frozenset(
    {
        "key",  # an API key's visible prefix, tdb_ and 8 characters
        "name",  # an API key's name
        "bucket",  # a bucket's id
        "token",  # a token's number (its id), never the token
        "scope",  # the key prefix a token is limited to
        "step",  # where a login failed: "password" or "two-factor code"
        "reauthentication",  # true when it was the password or code asked again
        "how",  # how a password changed: "changed" or "reset"
        "from_email",  # an email change's old address
        "to_email",  # and its new one
        "by",  # "staff" when staff did it (their address is not the account's to see)
    }
)

USER_AGENT_MAX = SecurityEvent._meta.get_field("user_agent").max_length  # a browser's fits


def event(user, kind: str, request=None, *, by_staff: bool = False, at=None, **detail):
    """A SecurityEvent of `user`, not saved (`record` saves one; a batch saves many at once).
    The client's address and browser come from `request`, unless staff did it."""
    unknown = set(detail) - DETAIL_FIELDS
    if unknown:
        raise ValueError(f"not a field of a security event's detail: {sorted(unknown)}")
    if kind not in Kind.values:
        raise ValueError(f"not a kind of security event: {kind!r}")
    if by_staff:
        detail["by"] = "staff"
    row = SecurityEvent(user_id=user.pk, kind=kind, detail=detail)
    if at is not None:
        row.at = at
    if request is not None and not by_staff:
        row.address = client_address(request)
        row.user_agent = request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_MAX]
    return row


def record(user, kind: str, request=None, *, by_staff: bool = False, **detail) -> SecurityEvent:
    """Write one event of `user` (see the module's docstring: in the change's transaction)."""
    row = event(user, kind, request, by_staff=by_staff, **detail)
    row.save()
    return row


def client_address(request) -> str | None:
    """The client's whole address: REMOTE_ADDR, which thisdb_site.middleware's
    ForwardedForMiddleware sets from X-Forwarded-For behind THISDB_PROXY_COUNT proxies (the
    rate limits' accounts.ratelimits.client_address counts IPv6 by its /64; a log wants the
    address itself). None if it is not an address (a test client's, a Unix socket's)."""
    address = request.META.get("REMOTE_ADDR", "")
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def for_user(user):
    """`user`'s events, latest first (the (user, -at) index)."""
    return SecurityEvent.objects.filter(user=user).order_by("-at", "-pk")


# Pruning (beat).

PRUNE_BATCH = 5000  # rows a statement: a few ms by the primary key, short locks
# After each batch the prune rests as long as the batch took, like the API's sweeps: at most
# half of a core, even on the first run over a year of events.
PRUNE_REST = 1.0


def prune(now: datetime, batch: int = PRUNE_BATCH, rest: float = PRUNE_REST) -> int:
    """Delete events older than THISDB_SECURITY_LOG_DAYS, `batch` at a time, oldest first (the
    `at` index); return how many. Idempotent."""
    cutoff = now - timedelta(days=settings.THISDB_SECURITY_LOG_DAYS)
    old = SecurityEvent.objects.filter(at__lt=cutoff)
    total = 0
    while True:
        started = time.monotonic()
        ids = list(old.order_by("at").values_list("pk", flat=True)[:batch])
        if ids:
            total += SecurityEvent.objects.filter(pk__in=ids).delete()[0]
        if len(ids) < batch:
            return total
        time.sleep((time.monotonic() - started) * rest)
