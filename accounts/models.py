from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.utils import timezone

from accounts import keys, security
from accounts.security import SecurityEvent  # noqa: F401  (a model of this app, defined there)

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
                security.Kind.KEY_CREATED,
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
