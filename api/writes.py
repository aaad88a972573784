"""What a caller may do to its buckets, keys and tokens: the checks and the single statements that
the v1 API and the web pages share, so the two can never disagree.

Callers first scope the bucket to the caller (api.scoping.owned_bucket) and claim the key's
write slot (api.limits); each function here then checks the quotas, runs one operation and turns
its failures into the API's errors (api.errors), which the web pages show as form errors.
"""

import string
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import get_random_string

from accounts import keys
from accounts.models import Account
from api import statements
from api.errors import BadRequest, Forbidden, bucket_not_found, key_not_found
from api.models import TOKEN_LENGTH, Bucket, Token
from api.principals import Principal, forget_token
from api.scoping import BucketInfo, forget_bucket

TOKEN_ALPHABET = string.ascii_lowercase + string.digits  # like the spec's example token


def create_bucket(principal: Principal, default_ttl: int) -> Bucket:
    max_buckets = principal.quotas.max_buckets
    with transaction.atomic():
        # Lock the account row so two racing creates cannot both take the last slot.
        Account.objects.select_for_update().filter(user_id=principal.user_id).first()
        if Bucket.objects.for_user(principal.user_id).count() >= max_buckets:
            raise Forbidden(
                f"bucket quota reached: your plan allows {max_buckets} buckets; "
                "delete one to create another"
            )
        # 62**20 possible ids: a collision is not a case worth code.
        return Bucket.objects.create(owner_id=principal.user_id, default_ttl=default_ttl)


def update_bucket(principal: Principal, bucket_id: str, default_ttl: int) -> None:
    updated = (
        Bucket.objects.for_user(principal.user_id)
        .filter(pk=bucket_id)
        .update(default_ttl=default_ttl)
    )
    forget_bucket(bucket_id)
    if not updated:
        raise bucket_not_found()  # deleted meanwhile


def delete_bucket(principal: Principal, bucket_id: str) -> None:
    with transaction.atomic():
        # Lock the bucket first: a key or token written meanwhile then waits for this delete
        # and is refused by its foreign key (404), instead of breaking the delete (500).
        mine = Bucket.objects.for_user(principal.user_id).filter(pk=bucket_id)
        if not mine.select_for_update().exists():
            raise bucket_not_found()  # deleted meanwhile
        # Keys and tokens go with it, by bulk DELETEs (Django fast-deletes: nothing is loaded).
        mine.delete()
    forget_bucket(bucket_id)


def create_token(
    api_key_id: int, bucket_id: str, prefix: str, *, read: bool, write: bool, ttl: int
) -> str:
    """A new token acting for `api_key_id`; returns the token, which is stored only hashed."""
    token = get_random_string(TOKEN_LENGTH, TOKEN_ALPHABET)
    try:
        Token.objects.create(
            hashed_token=keys.hash_secret(token),
            bucket_id=bucket_id,
            prefix=prefix,
            can_read=read,
            can_write=write,
            expires_at=timezone.now() + timedelta(seconds=ttl),
            created_by_id=api_key_id,
        )
    except IntegrityError:
        raise bucket_gone(bucket_id) from None  # deleted meanwhile
    return token


def revoke_token(token: Token) -> None:
    """Delete a token; it is refused at once on every worker."""
    owner_id = token.bucket.owner_id
    token_id = token.pk
    token.delete()
    forget_token(owner_id, token_id)


def check_storage_quota(principal: Principal) -> None:
    if principal.stored_bytes >= principal.quotas.max_stored_bytes:
        raise Forbidden(
            f"storage quota reached: your account stores {principal.stored_bytes} of "
            f"{principal.quotas.max_stored_bytes} bytes; delete keys to write again"
        )


def may_create_keys(principal: Principal, bucket: BucketInfo) -> bool:
    # At the keys-per-bucket quota, existing keys may still be written, new ones not.
    return bucket.key_count < principal.quotas.max_keys_per_bucket


def set_key(
    principal: Principal, bucket: BucketInfo, key: str, value: bytes, ttl: int, *, create: bool
) -> None:
    try:
        written = statements.set_value(bucket.id, key, value, ttl, create=create)
    except statements.BucketGone:
        raise bucket_gone(bucket.id) from None
    if not written:
        raise key_quota_reached(principal)


def increment_key(
    principal: Principal, bucket: BucketInfo, key: str, delta: int, ttl: int, *, create: bool
) -> int:
    try:
        value = statements.increment(bucket.id, key, delta, ttl, create=create)
    except statements.NotAnInteger as exc:
        raise BadRequest(str(exc)) from None
    except statements.BucketGone:
        raise bucket_gone(bucket.id) from None
    if value is None:
        raise key_quota_reached(principal)
    return value


def delete_key(bucket: BucketInfo, key: str) -> None:
    if not statements.delete_key(bucket.id, key):
        raise key_not_found()


def key_quota_reached(principal: Principal) -> Forbidden:
    limit = principal.quotas.max_keys_per_bucket
    return Forbidden(
        f"key quota reached: this bucket holds {limit} keys, the most your plan allows; "
        "existing keys can still be changed, or delete keys to add new ones"
    )


def bucket_gone(bucket_id: str):
    forget_bucket(bucket_id)
    return bucket_not_found()
