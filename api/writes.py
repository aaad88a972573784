"""Every change to buckets, keys and tokens, from start to end: one function an operation, which
the v1 API's viewsets and the web pages both call, so the two can never disagree.

Callers parse their input and scope the bucket to the caller (api.scoping.owned_bucket); each
function here then checks the quotas, claims the key's one-write-per-second slot through the
caller's `claim` (a key write), runs its one statement and returns what the answer shows. Its
failures are the API's errors (api.errors), which the web pages show as form errors.

A key write's claim is the caller's because the API's also counts the request, in the same
Redis round trip (api.dispatch.ApiViewSet.claim_write); the pages count no request and pass
claim_write below. Either takes the key's slot or raises TooManyRequests.
"""

import math
import string
from collections.abc import Callable
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import get_random_string

from accounts import keys
from accounts.models import Account
from api import conditions, history, limits, notify, statements, transactions
from api.errors import (
    BadRequest,
    Forbidden,
    PreconditionFailed,
    TooManyRequests,
    bucket_not_found,
    key_not_found,
    key_quota_reached,
)
from api.models import TOKEN_LENGTH, Bucket, Item, Token
from api.principals import Principal, forget_token
from api.scoping import BucketInfo, forget_bucket
from api.statements import Condition, Counted

TOKEN_ALPHABET = string.ascii_lowercase + string.digits  # like the spec's example token

# Takes the key's write slot (one write per second per key), or raises TooManyRequests.
ClaimWrite = Callable[[BucketInfo, str], None]


def claim_write(bucket: BucketInfo, key: str) -> None:
    """The claim of a write that counts no request (the web pages): the key's slot alone, the
    same Redis marker the API's writes take."""
    if limits.write_slot(bucket.owner_id, bucket.id, key):
        raise TooManyRequests(
            "This key was changed less than a second ago. Try again in a moment.",
            retry_after=1,
        )


# Buckets -----------------------------------------------------------------------------------------


def create_bucket(principal: Principal, default_ttl: int, label: str = "") -> Bucket:
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
        return Bucket.objects.create(
            owner_id=principal.user_id, default_ttl=default_ttl, label=label
        )


def update_bucket(
    principal: Principal, bucket_id: str, default_ttl: int, label: str | None = None
) -> None:
    """Set the bucket's default TTL, and its label unless None (the API has no labels)."""
    changes: dict = {"default_ttl": default_ttl}
    if label is not None:
        changes["label"] = label
    updated = Bucket.objects.for_user(principal.user_id).filter(pk=bucket_id).update(**changes)
    forget_bucket(bucket_id)
    if not updated:
        raise bucket_not_found()  # deleted meanwhile


def delete_bucket(principal: Principal, bucket_id: str) -> None:
    with transaction.atomic(), history.bucket_lock([bucket_id]):
        # Lock the bucket first: a key or token written meanwhile then waits for this delete
        # and is refused by its foreign key (404), instead of breaking the delete (500).
        mine = Bucket.objects.for_user(principal.user_id).filter(pk=bucket_id)
        if not mine.select_for_update().exists():
            raise bucket_not_found()  # deleted meanwhile
        # Its watchers are told of each live key's end (api.history).
        history.record_bucket_deleted(bucket_id)
        # Keys and tokens go with it, by bulk DELETEs (Django fast-deletes: nothing is loaded).
        mine.delete()
    forget_bucket(bucket_id)
    notify.bucket_deleted(bucket_id)


# Tokens ------------------------------------------------------------------------------------------


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


# Keys --------------------------------------------------------------------------------------------


def set_key(
    principal: Principal,
    bucket: BucketInfo,
    key: str,
    value: bytes,
    ttl: int | None,
    *,
    claim: ClaimWrite,
    condition: Condition | None = None,
) -> int:
    """Store `value` under `key` for `ttl` seconds (0: never expires; None: keep the key's
    expiry, or the bucket's default for a new key); returns the key's new version. With a
    `condition`, PreconditionFailed (412) when it does not hold, and nothing is written."""
    create = _admit_write(principal, bucket, key, claim)
    if ttl is None:
        ttl = _kept_ttl(bucket, key)
    try:
        version = statements.set_value(bucket.id, key, value, ttl, create, condition)
    except statements.BucketGone:
        raise bucket_gone(bucket.id) from None
    except statements.PreconditionFailed as failed:
        raise precondition_failed(condition, failed.current) from None
    if version is None:
        raise key_quota_reached(principal.quotas.max_keys_per_bucket)
    notify.changed(bucket.id)
    return version


def increment_key(
    principal: Principal,
    bucket: BucketInfo,
    key: str,
    delta: int,
    ttl: int | None,
    *,
    claim: ClaimWrite,
    condition: Condition | None = None,
) -> Counted:
    """Add `delta` to the key's number (a missing key counts from 0); returns the new value
    and version. `ttl` and `condition` as for set_key."""
    create = _admit_write(principal, bucket, key, claim)
    if ttl is None:
        ttl = _kept_ttl(bucket, key)
    try:
        counted = statements.increment(bucket.id, key, delta, ttl, create, condition)
    except statements.NotAnInteger as exc:
        raise BadRequest(str(exc)) from None
    except statements.BucketGone:
        raise bucket_gone(bucket.id) from None
    except statements.PreconditionFailed as failed:
        raise precondition_failed(condition, failed.current) from None
    if counted is None:
        raise key_quota_reached(principal.quotas.max_keys_per_bucket)
    notify.changed(bucket.id)
    return counted


def delete_key(
    bucket: BucketInfo, key: str, *, claim: ClaimWrite, condition: Condition | None = None
) -> None:
    # No storage quota: deleting is how an account over it writes again.
    claim(bucket, key)
    try:
        deleted = statements.delete_key(bucket.id, key, condition)
    except statements.PreconditionFailed as failed:
        raise precondition_failed(condition, failed.current) from None
    notify.changed(bucket.id)  # an expired key removed is a change too (its expiry)
    if not deleted:
        raise key_not_found()


def precondition_failed(condition: Condition | None, current: int | None) -> PreconditionFailed:
    """The 412 of a write whose condition did not hold, saying what the key is now."""
    etag = None if current is None else conditions.etag(current)
    if current is None:
        message = "precondition failed: the key does not exist; nothing was written"
    elif condition is not None and condition.kind == "absent":
        message = f"precondition failed: the key exists (ETag {etag}); nothing was written"
    else:
        message = (
            f"precondition failed: the key has changed, its ETag is now {etag}; nothing was "
            "written: read it again and retry"
        )
    return PreconditionFailed(message, etag)


# Transactions ------------------------------------------------------------------------------------

# Counts the transaction (plan.cost requests) and claims every written key's write slot, all or
# none, in one Redis round trip; raises TooManyRequests (api.dispatch.ApiViewSet.claim_batch).
ClaimBatch = Callable[[BucketInfo, transactions.Plan], None]


def apply_transaction(
    principal: Principal, bucket: BucketInfo, plan: transactions.Plan, *, claim: ClaimBatch
) -> dict:
    """Run a transaction (api.transactions) with every rule of a single write: the storage
    quota before any write, the write slots of its keys, the keys-per-bucket quota for new
    keys. Returns the 200 answer; Conflict (409) when a check fails."""
    first_write = next((op for op in plan.ops if op.kind in ("set", "increment")), None)
    if first_write is not None:
        try:
            _check_storage_quota(principal)
        except Forbidden as exc:
            raise Forbidden(f"ops[{first_write.index}]: {exc.detail}") from None
    claim(bucket, plan)
    try:
        answer = transactions.run(principal, bucket, plan, create=_may_create(principal, bucket))
    except statements.BucketGone:
        raise bucket_gone(bucket.id) from None
    if any(op.kind not in transactions.READS for op in plan.ops):
        notify.changed(bucket.id)
    return answer


def _claim_no_slot(bucket: BucketInfo, plan: transactions.Plan) -> None:
    """The claim of a transaction that counts no request and writes no key by name (a web
    page's delete by prefix): nothing to take. The write slot is a key's, named by the write;
    a prefix names none, and the API's delete_prefix op claims none either
    (transactions.Plan.written_keys)."""
    assert not plan.written_keys, "a transaction that writes keys by name claims their slots"


def delete_prefix(principal: Principal, bucket: BucketInfo, prefix: str) -> int:
    """Delete the bucket's keys that start with `prefix` (the bucket page's "Delete keys with
    this prefix"); returns how many live keys went. A one-op delete_prefix transaction, so
    every rule of the API's holds, its bound too: past transactions.DELETE_PREFIX_MAX keys it
    is a BadRequest and nothing is deleted."""
    op = transactions.Op(0, "delete_prefix", prefix=prefix)
    plan = transactions.Plan(checks=(), ops=(op,))
    transactions.authorize(principal, plan)
    answer = apply_transaction(principal, bucket, plan, claim=_claim_no_slot)
    return answer["results"][0]["deleted"]


def _admit_write(principal: Principal, bucket: BucketInfo, key: str, claim: ClaimWrite) -> bool:
    """The checks of a set or increment before its statement; True if it may create the key."""
    _check_storage_quota(principal)
    claim(bucket, key)
    return _may_create(principal, bucket)


def _check_storage_quota(principal: Principal) -> None:
    if principal.stored_bytes >= principal.quotas.max_stored_bytes:
        raise Forbidden(
            f"storage quota reached: your account stores {principal.stored_bytes} of "
            f"{principal.quotas.max_stored_bytes} bytes; delete keys to write again"
        )


def _may_create(principal: Principal, bucket: BucketInfo) -> bool:
    # At the keys-per-bucket quota, existing keys may still be written, new ones not.
    return bucket.key_count < principal.quotas.max_keys_per_bucket


def _kept_ttl(bucket: BucketInfo, key: str) -> int:
    """The seconds the key has left (0: it never expires); the bucket's default TTL for a key
    that is not there.

    Read after the key's write slot is claimed: no other write to the key can land between
    this read and the write (one write per second), so the expiry kept is the current one.
    Rounded up to the second, the expiry moves by less than a second.
    """
    now = timezone.now()
    row = (
        Item.objects.filter(bucket_id=bucket.id, key=key)
        .exclude(expires_at__lte=now)
        .values_list("expires_at")
        .first()
    )
    if row is None:
        return bucket.default_ttl
    if row[0] is None:
        return 0
    return max(1, math.ceil((row[0] - now).total_seconds()))


def bucket_gone(bucket_id: str):
    forget_bucket(bucket_id)
    return bucket_not_found()
