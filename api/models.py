import re
import string

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.crypto import get_random_string

BUCKET_ID_LENGTH = 20
BUCKET_ID_RE = re.compile(rf"[A-Za-z0-9]{{{BUCKET_ID_LENGTH}}}")
TOKEN_LENGTH = 40
TOKEN_RE = re.compile(rf"[a-z0-9]{{{TOKEN_LENGTH}}}")


def new_bucket_id() -> str:
    return get_random_string(BUCKET_ID_LENGTH, string.ascii_letters + string.digits)


class ByteOrderTextField(models.TextField):
    """Text compared byte by byte: PostgreSQL's "C" collation, SQLite's default BINARY.

    Keys must sort in byte order so a prefix is one index range and a cursor is just the last
    key seen. SQLite has no "C" collation, hence a field rather than db_collation="C".
    """

    def db_parameters(self, connection):
        params = super().db_parameters(connection)
        if connection.vendor == "postgresql":
            params["collation"] = "C"
        return params


class BucketQuerySet(models.QuerySet):
    def for_user(self, user_id: int):
        return self.filter(owner_id=user_id)


class Bucket(models.Model):
    id = models.CharField(primary_key=True, max_length=BUCKET_ID_LENGTH, default=new_bucket_id)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="buckets"
    )
    default_ttl = models.BigIntegerField(default=settings.THISDB_DEFAULT_TTL)  # seconds, 0 = never
    # A name its owner gives it on the pages, to tell buckets apart; the API does not use it.
    label = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    # Live keys and their bytes, refreshed every minute by beat (api.rollups): quotas read these so
    # a write stays one SQL statement.
    key_count = models.PositiveBigIntegerField(default=0)
    stored_bytes = models.PositiveBigIntegerField(default=0)

    objects = BucketQuerySet.as_manager()

    def __str__(self) -> str:
        return self.id


VERSION_SEQUENCE = "api_item_version"  # PostgreSQL: where every write's version comes from


class NextVersion(models.Expression):
    """A key's next version: the next number of one sequence shared by every key.

    One sequence, not a counter a key: a key deleted and written again gets a number it never had,
    so A -> B -> A never looks unchanged. The statements in api.statements draw it themselves;
    this default serves rows made otherwise (fixtures, the migration's existing rows). SQLite has
    no sequences: the embedded default's statements draw from a one-row table instead
    (api.statements), and rows made otherwise start at 0.
    """

    output_field = models.BigIntegerField()
    allowed_default = True

    def as_sql(self, compiler, connection):
        return f"nextval('{VERSION_SEQUENCE}')", []

    def as_sqlite(self, compiler, connection):
        return "0", []


class Item(models.Model):
    """One key of a bucket. Written only through api.statements (single SQL statements)."""

    bucket = models.ForeignKey(
        Bucket, on_delete=models.CASCADE, related_name="items", db_index=False
    )
    key = ByteOrderTextField()
    value = models.BinaryField()  # the request body, byte for byte
    expires_at = models.DateTimeField(null=True, blank=True)  # null = never
    updated_at = models.DateTimeField(default=timezone.now)
    # Changes on every write of the key and only grows (NextVersion); the API shows it as a
    # string, in ETag headers and listings.
    version = models.BigIntegerField(db_default=NextVersion())

    class Meta:
        constraints = [
            # Also the index every key lookup, prefix range and cursor page scans.
            models.UniqueConstraint(fields=["bucket", "key"], name="item_bucket_key"),
        ]
        indexes = [
            # Only keys that can expire, for the sweeper.
            models.Index(
                fields=["expires_at"],
                name="item_expires_at",
                condition=models.Q(expires_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bucket_id}/{self.key}"


class Token(models.Model):
    hashed_token = models.CharField(max_length=64, unique=True)  # SHA-256 hex, never the token
    bucket = models.ForeignKey(Bucket, on_delete=models.CASCADE, related_name="tokens")
    prefix = ByteOrderTextField(blank=True)
    can_read = models.BooleanField(default=False)
    can_write = models.BooleanField(default=False)
    expires_at = models.DateTimeField(db_index=True)
    # The key that made it: a token acts for that key's account and dies with it.
    created_by = models.ForeignKey(
        "accounts.ApiKey", on_delete=models.CASCADE, related_name="tokens"
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"token on {self.bucket_id}/{self.prefix}*"


class Change(models.Model):
    """One change of a key, in its bucket's history (api.history): what a watcher is sent.

    `position` counts the bucket's changes in commit order (1, 2, 3...): the writer draws it from
    the bucket's ChangeHead under that row's lock, held until the write commits, so a change
    that commits later has a higher position and a watcher that resumes after a position misses
    nothing. Kept THISDB_WATCH_HISTORY seconds, then swept by beat. No foreign key: a deleted
    bucket's last changes outlive it.
    """

    pk = models.CompositePrimaryKey("bucket_id", "position")
    bucket_id = models.CharField(max_length=BUCKET_ID_LENGTH)
    position = models.BigIntegerField()
    deleted = models.BooleanField(default=False)  # a delete; else a put (set or increment)
    key = ByteOrderTextField()
    value = models.BinaryField(null=True)  # a put's value; null for a delete
    version = models.BigIntegerField()
    expires_at = models.DateTimeField(null=True)  # a put's expiry (null: never)
    reason = models.CharField(max_length=16, blank=True, default="")  # a delete's: deleted...
    at = models.DateTimeField()  # when it was written: the sweep's measure

    def __str__(self) -> str:
        return f"{self.bucket_id}@{self.position}"


class ChangeHead(models.Model):
    """The last position of a bucket's history, and until when it is recorded. Its row lock
    orders the bucket's writers at commit (api.history); made when the bucket is first
    watched."""

    bucket_id = models.CharField(primary_key=True, max_length=BUCKET_ID_LENGTH)
    position = models.BigIntegerField(default=0)
    # Changes are recorded until then: THISDB_WATCH_HISTORY past the last time a watch was
    # open on the bucket (api.history.start_watching, kept up by the hubs).
    watched_until = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"{self.bucket_id}@{self.position}"
