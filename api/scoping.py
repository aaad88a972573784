"""Tenant scoping: every bucket is looked up from the caller, so another account's bucket is a
404 (never a 403, never data), and a token reaches only its bucket, prefix and permissions."""

from dataclasses import dataclass

from api.caching import ShortCache
from api.errors import Forbidden, bucket_not_found
from api.models import BUCKET_ID_RE, Bucket
from api.principals import Principal


@dataclass(frozen=True)
class BucketInfo:
    id: str
    owner_id: int
    default_ttl: int
    key_count: int  # live keys as beat last counted them (for the keys-per-bucket quota)


# A bucket's owner and default_ttl, kept briefly so a key write is one plain upsert. A deleted
# bucket is still refused at once: the item's foreign key rejects the write (see operations).
_buckets = ShortCache()


def forget_bucket(bucket_id: str) -> None:
    _buckets.pop(bucket_id, None)


def forget_all() -> None:
    _buckets.clear()


def owned_bucket(principal: Principal, bucket_id: str) -> BucketInfo:
    """The caller's bucket `bucket_id`, or a 404; a token's only bucket, or a 403."""
    if principal.token is not None and principal.token.bucket_id != bucket_id:
        raise Forbidden("this token is for another bucket")
    info = _buckets.live(bucket_id)
    if info is None:
        if not BUCKET_ID_RE.fullmatch(bucket_id):
            raise bucket_not_found()  # malformed ids never reach the database
        row = (
            Bucket.objects.filter(pk=bucket_id)
            .values_list("owner_id", "default_ttl", "key_count")
            .first()
        )
        if row is None:
            raise bucket_not_found()
        info = BucketInfo(bucket_id, *row)
        _buckets.keep(bucket_id, info)
    if info.owner_id != principal.user_id:
        raise bucket_not_found()
    return info


def require_api_key(principal: Principal, action: str) -> None:
    """Bucket and token management: an API key that may write, never a token."""
    if principal.token is not None:
        raise Forbidden(f"a token cannot {action}: use your API key (X-Api-Key)")
    require_writer(principal, action)


def require_writer(principal: Principal, action: str) -> None:
    if principal.read_only:
        raise Forbidden(f"this API key is read-only and cannot {action}: use a key that may write")


def require_token_access(principal: Principal, key: str, *, write: bool) -> None:
    token = principal.token
    if token is None:
        if write:
            require_writer(principal, "write keys")
        return
    if write and not token.can_write:
        raise Forbidden("this token has no write permission")
    if not write and not token.can_read:
        raise Forbidden("this token has no read permission")
    if not token.covers(key):
        raise Forbidden(f"this token only covers keys starting with {token.prefix!r}")


def token_list_prefix(principal: Principal, prefix: str) -> str:
    """The prefix a listing may use: a token lists only inside its own prefix."""
    token = principal.token
    if token is None:
        return prefix
    if not token.can_read:
        raise Forbidden("this token has no read permission")
    if prefix.startswith(token.prefix):
        return prefix
    if token.prefix.startswith(prefix):
        return token.prefix
    raise Forbidden(f"this token only covers keys starting with {token.prefix!r}")
