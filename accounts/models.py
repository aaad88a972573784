from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.utils import timezone

from accounts import keys

EXPIRY_CHOICES = [(30, "30 days"), (90, "90 days"), (365, "365 days"), (0, "never")]


class TooManyApiKeys(Exception):
    """The account has as many live API keys as its plan allows."""

    def __init__(self, allowed: int):
        super().__init__(
            f"API key limit reached: your plan allows {allowed} live API keys. "
            "Revoke one you no longer use to create another."
        )
        self.allowed = allowed


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def create_key(
        self,
        user,
        name: str = "",
        *,
        expires_in_days: int = 0,
        read_only: bool = False,
        request=None,
    ) -> tuple["ApiKey", str]:
        """Create a key for `user`; return it with its secret, which is shown this once only.
        Raise TooManyApiKeys when the account has its plan's number of live keys. The security
        log records it, with the address and browser of `request` if given.

        expires_in_days=0: the key never expires.
        """
        from accounts import security  # it imports this module

        secret = keys.new_secret()
        now = timezone.now()
        with transaction.atomic():
            # Lock the user's row: two racing creates count one after the other, so they cannot
            # both take the last slot.
            get_user_model().objects.select_for_update().filter(pk=user.pk).first()
            account = Account.objects.select_related("plan").filter(user=user).first()
            allowed = account.quotas().max_api_keys if account else settings.THISDB_MAX_API_KEYS
            if self.live_count(user) >= allowed:
                raise TooManyApiKeys(allowed)
            api_key = self.create(
                user=user,
                name=name,
                prefix=keys.parse(secret),
                hashed_secret=keys.hash_secret(secret),
                created_at=now,
                expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
                read_only=read_only,
            )
            security.record(
                user,
                SecurityEvent.Kind.KEY_CREATED,
                request,
                key=api_key.display_prefix,
                name=name,
            )
        return api_key, secret

    def live_count(self, user) -> int:
        """The keys that count against the plan's cap."""
        return self.active().filter(user=user).count()

    def active(self, now: datetime | None = None):
        """Keys that work: not revoked, not expired."""
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).exclude(expires_at__lte=now)


class ApiKey(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100, blank=True)
    # Public part of the secret, to find the row; never enough to authenticate.
    prefix = models.CharField(max_length=keys.PREFIX_LENGTH, unique=True)
    hashed_secret = models.CharField(max_length=64)  # SHA-256 hex of the secret, never the secret
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)  # written at most once a minute
    revoked_at = models.DateTimeField(null=True, blank=True)  # revocation is permanent
    expires_at = models.DateTimeField(null=True, blank=True)  # null = never
    # May read buckets and keys, never write, create tokens or create/delete buckets.
    read_only = models.BooleanField(default=False)
    # When its owner was told that it expires within a week (beat emails once).
    expiry_warned_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        indexes = [
            # Keys that can expire, for beat's expiry task.
            models.Index(
                fields=["expires_at"],
                name="apikey_expires_at",
                condition=models.Q(expires_at__isnull=False, revoked_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{keys.BRAND}{self.prefix}… ({self.name or 'unnamed'})"

    @property
    def display_prefix(self) -> str:
        return f"{keys.BRAND}{self.prefix}"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    @property
    def status(self) -> str:
        if self.is_revoked:
            return "revoked"
        if self.is_expired():
            return "expired"
        return "active"


class Plan(models.Model):
    """A set of quotas. A blank figure means the platform default from settings."""

    name = models.CharField(max_length=50, unique=True)
    is_default = models.BooleanField(default=False, help_text="Given to accounts without a plan.")
    requests_per_hour = models.PositiveIntegerField(null=True, blank=True)
    max_buckets = models.PositiveIntegerField(null=True, blank=True)
    max_keys_per_bucket = models.PositiveIntegerField(null=True, blank=True)
    max_stored_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    max_api_keys = models.PositiveIntegerField(null=True, blank=True)
    max_watches = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class Account(models.Model):
    """A user's plan, the per-account overrides staff may set, and usage figures."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="account"
    )
    plan = models.ForeignKey(
        Plan,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        help_text="Blank: platform defaults.",
    )
    # Overrides of the plan's figures for this account (blank: the plan's figure).
    requests_per_hour = models.PositiveIntegerField(null=True, blank=True)
    max_buckets = models.PositiveIntegerField(null=True, blank=True)
    max_keys_per_bucket = models.PositiveIntegerField(null=True, blank=True)
    max_stored_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    max_api_keys = models.PositiveIntegerField(null=True, blank=True)
    max_watches = models.PositiveIntegerField(null=True, blank=True)
    # Refreshed every minute by beat (api.rollups.refresh_stored_figures).
    stored_bytes = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"account of {self.user}"

    def quotas(self):
        from accounts.quotas import FIELDS, resolve

        plan_values = [getattr(self.plan, f) if self.plan else None for f in FIELDS]
        return resolve([getattr(self, f) for f in FIELDS], plan_values)


# What people and staff read as the plan of an account without one: it gets the platform
# defaults of settings, which the free plan follows too.
NO_PLAN_NAME = "free"


def plan_name(account: Account | None) -> str:
    """The name of the plan `account` is on (a user may have no account row: no plan either)."""
    return account.plan.name if account and account.plan else NO_PLAN_NAME


class UsageHour(models.Model):
    """Requests made with one API key in one clock hour, rolled up from Redis by beat."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="usage")
    hour = models.DateTimeField()  # the hour's start, UTC
    requests = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["api_key", "hour"], name="usage_key_hour")]

    def __str__(self) -> str:
        return f"{self.api_key} {self.hour:%Y-%m-%d %H}h: {self.requests}"


class SecurityEvent(models.Model):
    """Something that changed who can reach an account, or an attempt to: shown to its owner on
    the account page and to staff in the console, kept THISDB_SECURITY_LOG_DAYS. Written only by
    accounts.security.record, in the transaction of the change it records. Never a secret: a
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
    # What the event was about, from accounts.security.DETAIL_FIELDS only.
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
