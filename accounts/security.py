"""The security log: each account's logins, failed logins, API keys, tokens and settings changes,
with when and from where (SecurityEvent, a model of accounts, here with the functions that write
it so that accounts.models can log a new key without importing itself back).

`record` is the one way an event is written. Call it inside the transaction of the change it
records, so that both are kept or neither: a change rolled back leaves no event, and an event
that cannot be written undoes its change. Beat prunes events older than
THISDB_SECURITY_LOG_DAYS (`prune`).
"""

import ipaddress
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class SecurityEvent(models.Model):
    """Something that changed who can reach an account, or an attempt to: shown to its owner on
    the account page and to staff in the console, kept THISDB_SECURITY_LOG_DAYS. Written only by
    `record` (below), in the transaction of the change it records. Never a secret: a
    key by its visible prefix, no password, token or code."""

    class Kind(models.TextChoices):
        KEY_CREATED = "key_created", "API key created"
        KEY_REVOKED = "key_revoked", "API key revoked"
        KEY_EXPIRED = "key_expired", "API key expired"
        TOKEN_CREATED = "token_created", "Token created in the browser"
        LOGIN = "login", "Logged in"
        LOGIN_FAILED = "login_failed", "Failed login"
        TWO_FACTOR_ON = "two_factor_on", "Two-factor turned on"
        TWO_FACTOR_OFF = "two_factor_off", "Two-factor turned off"
        RECOVERY_CODE_USED = "recovery_code_used", "Recovery code used"
        PASSWORD_CHANGED = "password_changed", "Password changed"
        EMAIL_CHANGED = "email_changed", "Email changed"
        SUSPENDED = "suspended", "Suspended by staff"
        REACTIVATED = "reactivated", "Reactivated by staff"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="security_events"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    at = models.DateTimeField(default=timezone.now)
    # The client's address as the platform sees it (REMOTE_ADDR, set from X-Forwarded-For behind
    # THISDB_PROXY_COUNT proxies); none for beat's and staff's events.
    address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=200, blank=True)  # cut to its first 200 characters
    # What the event was about, from DETAIL_FIELDS (below) only.
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            # The account page: an account's latest events.
            models.Index(fields=["user", "-at"], name="securityevent_user_at"),
            # Beat's pruning of events past THISDB_SECURITY_LOG_DAYS, oldest first.
            models.Index(fields=["at"], name="securityevent_at"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.at:%Y-%m-%d %H:%M:%S}"

    @property
    def description(self) -> str:
        """What happened, in a sentence of the account page."""
        d, Kind = self.detail, self.Kind
        key = f"{d.get('key', '')}\u2026 ({d.get('name') or 'unnamed'})"
        by_staff = " by staff" if d.get("by") == "staff" else ""
        again = " (asked again to confirm it was you)" if d.get("reauthentication") else ""
        match self.kind:
            case Kind.KEY_CREATED:
                return f"API key {key} created{by_staff}"
            case Kind.KEY_REVOKED:
                return f"API key {key} revoked{by_staff}"
            case Kind.KEY_EXPIRED:
                return f"API key {key} expired"
            case Kind.TOKEN_CREATED:
                scope = (
                    f"keys starting with \u201c{d['scope']}\u201d" if d.get("scope") else "all keys"
                )
                return (
                    f"Token #{d.get('token')} created in the browser for bucket {d.get('bucket')} "
                    f"({scope}), acting for API key {d.get('key')}\u2026"
                )
            case Kind.LOGIN_FAILED:
                what = "two-factor code" if d.get("step") == "two-factor code" else "password"
                return f"Failed login: wrong {what}{again}"
            case Kind.RECOVERY_CODE_USED:
                return f"Recovery code used{again}"
            case Kind.PASSWORD_CHANGED:
                if d.get("how") == "reset":
                    return "Password reset with a link sent by email"
                return f"Password changed{by_staff}"
            case Kind.EMAIL_CHANGED:
                return f"Email changed from {d.get('from_email')} to {d.get('to_email')}"
            case Kind.TWO_FACTOR_ON | Kind.TWO_FACTOR_OFF:
                return f"{self.get_kind_display()}{by_staff}"
        return self.get_kind_display()


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
