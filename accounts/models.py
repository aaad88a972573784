from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts import keys


class ApiKeyQuerySet(models.QuerySet):
    def create_key(self, user, name: str = "") -> tuple["ApiKey", str]:
        """Create a key for `user`; return it with its secret, which is shown this once only."""
        secret = keys.new_secret()
        api_key = self.create(
            user=user,
            name=name,
            prefix=keys.parse(secret),
            hashed_secret=keys.hash_secret(secret),
        )
        return api_key, secret

    def active(self):
        return self.filter(revoked_at__isnull=True)


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

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{keys.BRAND}{self.prefix}… ({self.name or 'unnamed'})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def revoke(self) -> None:
        """Refuse this key from now on: at once in this process, within the auth cache's
        lifetime (THISDB_AUTH_CACHE_SECONDS) in every other worker."""
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])
        from api import principals  # the API's cache of keys; accounts holds no API views

        principals.forget_api_key(self.prefix)
