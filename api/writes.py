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
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.crypto import get_random_string

from accounts import keys
from accounts.models import Account
from api import conditions, history, limits, notify, statements, transactions
from api.errors import (
    ApiError,
    BadRequest,
    Forbidden,
    PreconditionFailed,
    Stopped,
    TooManyRequests,
    bucket_not_found,
    key_not_found,
    key_quota_reached,
)
from api.imports import BadEntry, Entry
from api.models import TOKEN_LENGTH, Bucket, Item, Token
from api.principals import Principal, forget_token
from api.scoping import BucketInfo, forget_bucket, require_token_access
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
            reason="key_writes",
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


# Imports -----------------------------------------------------------------------------------------

# Counts `cost` requests of an import against the hour, or as many as the hour has left: returns
# (requests counted, seconds until the hour has more when they fell short)
# (api.dispatch.ApiViewSet.charge_requests).
ChargeRequests = Callable[[int], tuple[int, int]]

# Lines a batch writes at most: one upsert of 1,000 rows (about 12 ms on PostgreSQL here), and
# the 1,000 changes a watcher reads at a time (api.history.READ_BATCH), so each batch reaches
# watchers in one read and a long import never holds them back by more than a batch.
IMPORT_BATCH_LINES = 1000
# Value bytes a batch holds at most: the request's memory stays within about 40 MiB whatever the
# body's size (the values, their SQL parameters, one line being read).
IMPORT_BATCH_BYTES = 8 * 1024 * 1024
# An import's rest between batches, as a share of the time its last batch's statement took:
# 0.4 kept another account's GET p99 during an import at 1.5x to 1.7x its p99 without (2.0x
# with no rest) and the import at 53,000 to 58,000 keys/s (70,000 with none; bench/NOTES.md).
IMPORT_REST_SHARE = 0.4


def import_items(
    principal: Principal,
    bucket: BucketInfo,
    entries: Iterator[Entry],
    *,
    unit: str,
    charge: ChargeRequests,
) -> int:
    """Write the entries of an import (api.imports) in batches, each with every rule of a single
    write: the token's prefix and permission, the storage quota, the keys-per-bucket quota, one
    request counted per 100 lines (limits.OPS_PER_REQUEST). Returns the lines imported.

    Each batch is checked, then written in one statement (api.statements.import_rows) and
    committed; a key on two lines of a batch is written once, with the later line. At the first
    line that cannot be written (refused, over a quota or the hour's requests, or a broken body)
    the lines before it are written and the import stops: Stopped, whose message and fields name
    the line (`unit`: "line" or "item") and say what was applied, so a client can resume there.

    One write per second per key (the spec's rule for single writes) is not claimed here: it
    would cost a Redis trip per key, and one key written recently would refuse the whole import.
    An import writes each key once per batch, and counts its requests; a key written by another
    request at the same moment is safe, as both writes take the row's lock in turn and each
    draws its own version (api.statements.import_rows).
    """
    run = _Import(principal, bucket, unit, charge)
    batch: list[Entry] = []
    size = 0
    try:
        for entry in entries:
            try:
                require_token_access(principal, entry.key, write=True)
            except Forbidden as exc:
                raise BadEntry(entry.place, exc) from None
            batch.append(entry)
            size += len(entry.value)
            if len(batch) >= IMPORT_BATCH_LINES or size >= IMPORT_BATCH_BYTES:
                run.apply(batch)
                batch, size = [], 0
        run.apply(batch)
    except BadEntry as bad:
        run.apply(batch)  # the lines before it
        raise run.stopped(bad.place, bad.error) from None
    return run.imported


class _Import:
    """An import's progress across its batches."""

    def __init__(self, principal: Principal, bucket: BucketInfo, unit: str, charge):
        self.principal, self.bucket, self.unit, self.charge = principal, bucket, unit, charge
        self.imported = 0  # lines written
        self.charged = 0  # requests counted
        self.created = 0  # new keys
        self.added_bytes = 0  # keys and values written, for the storage quota

    def apply(self, batch: list[Entry]) -> None:
        """Check and write `batch`, or as much of it as the quotas and the hour allow: then
        Stopped at the first line left out."""
        if not batch:
            return
        try:  # as before a single write: refused once the account stores its quota
            _check_storage_quota(self.principal, self.added_bytes)
        except Forbidden as exc:
            raise self.stopped(batch[0].place, exc) from None
        fits, why = self._within_key_quota(batch)
        fits, why = self._within_hour(batch, fits, why)
        if fits:
            self._write(batch[:fits])
        if why is not None:
            raise self.stopped(batch[fits].place, why)

    def _write(self, written: list[Entry]) -> None:
        latest = {entry.key: entry for entry in written}  # a later line wins
        rows = [latest[key] for key in sorted(latest)]
        default = self.bucket.default_ttl
        started = time.monotonic()
        try:
            self.created += statements.import_rows(
                self.bucket.id,
                [row.key for row in rows],
                [row.value for row in rows],
                [default if row.ttl is None else row.ttl for row in rows],
            )
        except statements.BucketGone:
            raise bucket_gone(self.bucket.id) from None
        # The database's share: an import rests between batches for a part of the time its
        # batch took (as PostgreSQL's vacuum_cost_delay does), so that the other requests it
        # serves meanwhile keep their latency (bench/NOTES.md, item 25).
        time.sleep((time.monotonic() - started) * IMPORT_REST_SHARE)
        self.imported += len(written)
        self.added_bytes += sum(len(e.key.encode()) + len(e.value) for e in written)
        notify.changed(self.bucket.id)
        _release_connection()

    def _within_key_quota(self, batch: list[Entry]) -> tuple[int, ApiError | None]:
        """How many lines of the batch may be written before the first that would create a key
        past the keys-per-bucket quota (the bucket's count as beat last made it, plus the keys
        this import created), and the error of that line. Only near the quota are the batch's
        keys looked up (one statement) to tell new ones from existing ones."""
        limit = self.principal.quotas.max_keys_per_bucket
        room = limit - self.bucket.key_count - self.created
        if len(batch) <= room:
            return len(batch), None
        existing = statements.existing_keys(self.bucket.id, sorted({e.key for e in batch}))
        new: set[str] = set()
        for i, entry in enumerate(batch):
            if entry.key in existing or entry.key in new:
                continue
            if len(new) >= room:
                return i, key_quota_reached(limit)
            new.add(entry.key)
        return len(batch), None

    def _within_hour(
        self, batch: list[Entry], fits: int, why: ApiError | None
    ) -> tuple[int, ApiError | None]:
        """Count the requests of the first `fits` lines (one per 100 lines of the import, so far
        and with them); when the hour has fewer left, fewer lines fit, and the first left out
        gets a 429."""
        if not fits:
            return fits, why
        owed = limits.batch_cost(self.imported + fits) - self.charged
        if owed <= 0:
            return fits, why
        try:
            counted, retry_after = self.charge(owed)
        except Forbidden as exc:  # the key was revoked, or the account suspended, meanwhile
            raise self.stopped(batch[0].place, exc) from None
        self.charged += counted
        if counted == owed:
            return fits, why
        paid = self.charged * limits.OPS_PER_REQUEST - self.imported
        left = self.principal.quotas.requests_per_hour
        return paid, TooManyRequests(
            f"rate limit reached: an import counts one request per {limits.OPS_PER_REQUEST} "
            f"lines and this API key has used its {left} for this hour; see Retry-After",
            retry_after=retry_after,
            reason="hourly_requests",
        )

    def stopped(self, place: int, error: ApiError) -> Stopped:
        unit, imported = self.unit, self.imported
        if place > 1:
            applied = f"{unit}s 1 to {place - 1} were applied ({imported} imported)"
        else:
            applied = "nothing was applied"
        message = str(error.detail)
        if not message.startswith(f"{unit} {place}:"):
            message = f"{unit} {place}: {message}"
        return Stopped(
            error,
            f"{message}; {applied}",
            {unit: place, "applied": place - 1, "imported": imported},
        )


def _release_connection() -> None:
    """Give the pooled database connection back between batches: an import may read its body
    for long, and holds a connection only while it writes (DESIGN: never while reading a body)."""
    if connection.vendor == "postgresql" and settings.DATABASE_POOL_SIZE:
        if not connection.in_atomic_block:
            connection.close()


def _admit_write(principal: Principal, bucket: BucketInfo, key: str, claim: ClaimWrite) -> bool:
    """The checks of a set or increment before its statement; True if it may create the key."""
    _check_storage_quota(principal)
    claim(bucket, key)
    return _may_create(principal, bucket)


def _check_storage_quota(principal: Principal, added: int = 0) -> None:
    """Refuse a write once the account stores its quota (as beat last counted it, plus `added`:
    what an import wrote since)."""
    stored = principal.stored_bytes + added
    if stored >= principal.quotas.max_stored_bytes:
        raise Forbidden(
            f"storage quota reached: your account stores {stored} of "
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
