"""Transactions: `POST /v1/<bucket>` with a JSON object body (spec), as three steps.

    plan = parse(body)                 # the whole body checked, nothing touched yet (400, 413)
    authorize(principal, plan)         # a token's prefix and permissions, an API key's (403)
    answer = run(principal, bucket, plan, create=...)   # {"ok": true, "results": [...]} or 409

The caller scopes the bucket first (api.scoping.owned_bucket); api.writes.apply_transaction then
checks the quotas, counts the transaction and claims its keys' write slots (one Redis round
trip, api.limits.check_batch) and runs it.

On PostgreSQL a transaction is one database transaction at REPEATABLE READ. Its first statement
reads the versions of every checked and written key and locks their rows in key order: that
decides the checks, and two transactions on the same keys queue in the same order instead of
deadlocking. The ops then run in groups, one statement per kind of op of a group (ops of a kind
batched over arrays), so a transaction costs a handful of statements, not one per op. A
serialization failure or a deadlock (a concurrent writer changed a row after this transaction's
snapshot, or two transactions deleting prefixes met) runs the whole transaction again, up to
ATTEMPTS times; then the answer is a 503 with Retry-After, as the request itself was fine and
the same body may simply be sent again.

A checked key that is only read (not written) and does not exist cannot be locked: a concurrent
transaction may create it. Checks on keys the transaction writes are exact.

Behind a pooler in transaction mode (DATABASE_TRANSACTION_POOLING) the bucket's lock cannot be
held from before BEGIN: the transaction takes it exclusive as its first statement and runs at
READ COMMITTED. No one else writes the bucket while it holds the lock, so each of its statements
sees the bucket as the first one did, plus its own changes: the same answers, one transaction
of a bucket at a time.

The embedded SQLite default runs the ops one by one with the single writes of api.statements,
in one database transaction under their process-wide write lock.
"""

import base64
import binascii
import json
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from django.conf import settings
from django.db import OperationalError, connection, transaction
from rest_framework import status

from api import history, limits, statements
from api.errors import (
    ApiError,
    BadRequest,
    Forbidden,
    PayloadTooLarge,
    ServiceUnavailable,
    key_quota_reached,
)
from api.history import Changed
from api.inputs import check_key, check_prefix
from api.principals import Principal
from api.renderers import encode_value
from api.scoping import BucketInfo, require_token_access, require_writer

MAX_OPS = 1000  # ops per transaction, and checks (spec); about 1 MiB of SQL arrays at most
# A count reads the prefix's index range up to this many keys (about 3 ms, as the bucket page's
# exact count); past it the answer says "more": true. 1,000 counts: a few seconds at most.
COUNT_CAP = 10_000
# Keys (expired ones included) the delete_prefix ops of one transaction may delete together:
# about 0.1 s of deletes holding their row locks. Past it the transaction is refused whole.
DELETE_PREFIX_MAX = 10_000
# Runs of a transaction that meets a serialization failure or a deadlock, pausing up to 10 ms
# times the attempt between them (at most 0.1 s of pauses); then a 503.
ATTEMPTS = 5
RETRY_PAUSE_SECONDS = 0.01
_RETRYABLE = ("40001", "40P01")  # serialization_failure, deadlock_detected

POINT_WRITES = ("set", "increment", "delete")
READS = ("get", "count")
_FIELDS = {
    "set": {"op", "key", "value", "encoding", "ttl"},
    "increment": {"op", "key", "by", "ttl"},
    "delete": {"op", "key"},
    "get": {"op", "key"},
    "count": {"op", "prefix"},
    "delete_prefix": {"op", "prefix"},
}
_BODY_FIELDS = {"checks", "ops"}
_CHECK_FIELDS = {"key", "version"}
_MAX_VERSION_DIGITS = 19  # versions are positive 64-bit integers


@dataclass(frozen=True, slots=True)
class Check:
    index: int
    key: str
    version: int | None  # None: the key must not exist


@dataclass(frozen=True, slots=True)
class Op:
    index: int
    kind: str  # a name of _FIELDS
    key: str = ""  # set, increment, delete, get
    prefix: str = ""  # count, delete_prefix
    value: bytes = b""  # set
    ttl: int | None = None  # set, increment; None: the bucket's default_ttl
    by: int = 0  # increment


@dataclass(frozen=True)
class Plan:
    checks: tuple[Check, ...]
    ops: tuple[Op, ...]

    @property
    def written_keys(self) -> list[str]:
        """The keys that set, increment and delete write (each at most once)."""
        return [op.key for op in self.ops if op.kind in POINT_WRITES]

    @property
    def cost(self) -> int:
        """Requests the transaction counts against the hourly limit."""
        return limits.batch_cost(len(self.ops))


class Conflict(ApiError):
    """A check failed: nothing was applied. `body` is the 409 answer."""

    status_code = status.HTTP_409_CONFLICT

    def __init__(self, body: dict):
        failed = ", ".join(f"checks[{i}]" for i in body["failed"])
        super().__init__(f"a check failed ({failed}): nothing was applied")
        self.body = body


# Parsing: the whole body is checked before anything touches the database.


def parse(body: bytes) -> Plan:
    """The transaction a JSON body asks for; BadRequest (or PayloadTooLarge for a value over
    the single-value limit) naming the check or op at fault."""
    try:
        data = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        raise BadRequest(
            'the body must be a JSON object: {"checks": [...], "ops": [...]}'
        ) from None
    if not isinstance(data, dict):
        raise BadRequest('the body must be a JSON object: {"checks": [...], "ops": [...]}')
    _no_unknown_fields(data, _BODY_FIELDS, "the body")
    raw_checks = data.get("checks", [])
    raw_ops = data.get("ops")
    if not isinstance(raw_ops, list):
        raise BadRequest("ops must be a list of operations")
    if not isinstance(raw_checks, list):
        raise BadRequest('checks must be a list of {"key", "version"}')
    for name, items in (("ops", raw_ops), ("checks", raw_checks)):
        if len(items) > MAX_OPS:
            raise BadRequest(f"a transaction has at most {MAX_OPS} {name}, this one {len(items)}")
    checks = tuple(_parse_check(i, raw) for i, raw in enumerate(raw_checks))
    ops = tuple(_parse_op(i, raw) for i, raw in enumerate(raw_ops))
    writer: dict[str, int] = {}
    for op in ops:
        if op.kind not in POINT_WRITES:
            continue
        if op.key in writer:
            raise BadRequest(
                f"ops[{op.index}]: key {op.key!r} is written by ops[{writer[op.key]}] already; "
                "a transaction writes a key at most once"
            )
        writer[op.key] = op.index
    return Plan(checks, ops)


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _no_unknown_fields(data: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadRequest(
            f"{where}: unknown fields {', '.join(unknown)}; it takes {', '.join(sorted(allowed))}"
        )


def _parse_check(index: int, raw) -> Check:
    where = f"checks[{index}]"
    if not isinstance(raw, dict):
        raise BadRequest(f'{where}: a check is an object {{"key", "version"}}')
    _no_unknown_fields(raw, _CHECK_FIELDS, where)
    if "version" not in raw:
        raise BadRequest(f"{where}: version is missing: a version string, or null for absent")
    key = key_field(raw.get("key"), where)
    version = raw["version"]
    if version is None:
        return Check(index, key, None)
    digits = version if isinstance(version, str) else ""
    if not (digits.isascii() and digits.isdigit() and len(digits) <= _MAX_VERSION_DIGITS):
        raise BadRequest(
            f'{where}: version must be a key\'s version as a string (e.g. "17"), '
            f"or null for a key that must not exist, not {version!r}"
        )
    return Check(index, key, int(digits))


def _parse_op(index: int, raw) -> Op:
    where = f"ops[{index}]"
    if not isinstance(raw, dict):
        raise BadRequest(f'{where}: an operation is an object with "op"')
    kind = raw.get("op")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise BadRequest(f"{where}: op must be one of {', '.join(_FIELDS)}, not {kind!r}")
    _no_unknown_fields(raw, _FIELDS[kind], where)
    if kind in ("count", "delete_prefix"):
        return Op(index, kind, prefix=_prefix(raw.get("prefix"), where))
    key = key_field(raw.get("key"), where)
    if kind == "set":
        value = value_field(raw.get("value"), raw.get("encoding"), where)
        return Op(index, kind, key, value=value, ttl=ttl_field(raw.get("ttl"), where))
    if kind == "increment":
        by, ttl = _by(raw.get("by", 1), where), ttl_field(raw.get("ttl"), where)
        return Op(index, kind, key, by=by, ttl=ttl)
    return Op(index, kind, key)


# The fields of a key write, checked as a single write checks them; `where` names the place in
# the body (also an import's line, api.imports).


def key_field(raw, where: str) -> str:
    if not isinstance(raw, str):
        raise BadRequest(f"{where}: key must be a string")
    try:
        return check_key(raw)
    except BadRequest as exc:
        raise BadRequest(f"{where}: {exc.detail}") from None


def _prefix(raw, where: str) -> str:
    if not isinstance(raw, str):
        raise BadRequest(f'{where}: prefix must be a string ("" for every key)')
    try:
        check_prefix(raw)
        raw.encode("utf-8")
    except BadRequest as exc:
        raise BadRequest(f"{where}: {exc.detail}") from None
    except UnicodeEncodeError:
        raise BadRequest(f"{where}: prefix must be valid UTF-8") from None
    return raw


def value_field(raw, encoding, where: str) -> bytes:
    if not isinstance(raw, str):
        raise BadRequest(f'{where}: value must be a string (text, or base64 with "encoding")')
    if encoding is None:
        try:
            value = raw.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(
                f'{where}: value is not valid UTF-8: send bytes as base64 with "encoding": "base64"'
            ) from None
    elif encoding == "base64":
        try:
            value = base64.b64decode(raw.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error):
            raise BadRequest(f"{where}: value is not valid base64") from None
    else:
        raise BadRequest(f'{where}: encoding must be "base64" or left out (text), not {encoding!r}')
    limit = settings.THISDB_VALUE_MAX_BYTES
    if len(value) > limit:
        raise PayloadTooLarge(f"{where}: the value is larger than the limit of {limit} bytes")
    return value


def ttl_field(raw, where: str, name: str = "ttl") -> int | None:
    if raw is None:
        return None
    high = settings.THISDB_MAX_TTL
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= high:
        raise BadRequest(
            f"{where}: {name} must be a whole number of seconds from 0 to {high} "
            f"(0 = never expire), not {raw!r}"
        )
    return raw


def _by(raw, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise BadRequest(f"{where}: by must be a JSON integer, e.g. 1 or -5, not {raw!r}")
    if not statements.INT64_MIN <= raw <= statements.INT64_MAX:
        raise BadRequest(f"{where}: by must fit in a 64-bit integer")
    return raw


# Authorization: what the caller's token or API key may touch.


def authorize(principal: Principal, plan: Plan) -> None:
    """Forbidden naming the first check or op the caller may not do: checks, get and count
    need read, the rest write; a token only reaches keys and prefixes inside its own prefix."""
    for check in plan.checks:
        _may(principal, f"checks[{check.index}]", key=check.key, write=False)
    for op in plan.ops:
        write = op.kind not in ("get", "count")
        if op.kind in ("count", "delete_prefix"):
            _may(principal, f"ops[{op.index}]", prefix=op.prefix, write=write)
        else:
            _may(principal, f"ops[{op.index}]", key=op.key, write=write)


def _may(principal: Principal, where: str, *, write: bool, key=None, prefix=None) -> None:
    try:
        if key is not None:
            require_token_access(principal, key, write=write)
            return
        token = principal.token
        if token is None:
            if write:
                require_writer(principal, "delete keys")
            return
        # A prefix inside the token's own: its range is all keys the token covers.
        require_token_access(principal, token.prefix, write=write)
        if not prefix.startswith(token.prefix):
            raise Forbidden(f"this token only covers keys starting with {token.prefix!r}")
    except Forbidden as exc:
        raise Forbidden(f"{where}: {exc.detail}") from None


# Running.


def run(principal: Principal, bucket: BucketInfo, plan: Plan, *, create: bool) -> dict:
    """Apply the plan to `bucket`: {"ok": True, "results": [...]} (one result per op), or
    Conflict (409) when a check fails; any other error leaves nothing applied either.
    `create`: whether new keys may be made (the keys-per-bucket quota, api.writes)."""
    applying = _Run(principal, bucket, plan, create)
    if connection.vendor == "postgresql":
        return _with_retries(applying)
    return applying.one_by_one()


def _with_retries(applying: "_Run") -> dict:
    # Inside a transaction already (tests, a caller's atomic block) this one is a savepoint:
    # the isolation level is the outer one's, and a retry rolls back to the savepoint.
    nested = connection.in_atomic_block
    # Behind a transaction-mode pooler no lock may outlive a transaction: the bucket's lock is
    # then the transaction's own, taken first, at READ COMMITTED (settings,
    # DATABASE_TRANSACTION_POOLING); record() finds out whether the bucket is watched.
    inside = nested or settings.DATABASE_TRANSACTION_POOLING
    for attempt in range(1, ATTEMPTS + 1):
        try:
            if inside:
                with transaction.atomic(), history.bucket_lock([applying.bucket.id]):
                    applying.recording = True
                    return applying.batched()
            # The bucket's lock before BEGIN (api.history.transaction_lock).
            with (
                history.transaction_lock(applying.bucket.id) as watched,
                _repeatable_read(nested),
                transaction.atomic(),
            ):
                applying.recording = watched  # not watched: nothing to record
                return applying.batched()
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) not in _RETRYABLE:
                raise
        if attempt < ATTEMPTS:
            # A random pause, so transactions that failed together do not meet again at once.
            time.sleep(random.random() * RETRY_PAUSE_SECONDS * attempt)
    raise ServiceUnavailable(
        f"the transaction's keys are busy: it met concurrent writers {ATTEMPTS} times and was "
        "not applied; send it again",
        retry_after=1,
    )


@contextmanager
def _repeatable_read(nested: bool) -> Iterator[None]:
    """The next transaction at REPEATABLE READ: psycopg then opens it with BEGIN ISOLATION
    LEVEL REPEATABLE READ, in the round trip of its first statement (a SET TRANSACTION would
    be one more). The pooled connection goes back to its own level after."""
    if nested:
        yield
        return
    connection.ensure_connection()
    raw = connection.connection
    previous = raw.isolation_level
    raw.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        yield
    finally:
        raw.isolation_level = previous


class _Run:
    """One application of a plan; its results fill as its ops run."""

    def __init__(self, principal: Principal, bucket: BucketInfo, plan: Plan, create: bool):
        self.principal, self.bucket, self.plan, self.create = principal, bucket, plan, create
        self.recording = True  # whether its changes may need recording for watchers

    def _start(self) -> None:
        self.results: list[dict] = [{} for _ in self.plan.ops]
        self.delete_left = DELETE_PREFIX_MAX
        # PostgreSQL: each op's changes, recorded in op order by the last statement
        # (api.history.record: the bucket's head is the last lock the transaction takes).
        self.changes: list[tuple[int, list[Changed]]] = []

    def _decide_checks(self, current: dict[str, int]) -> None:
        failed = [c.index for c in self.plan.checks if current.get(c.key) != c.version]
        if failed:
            versions = {c.key: str(current[c.key]) for c in self.plan.checks if c.key in current}
            raise Conflict({"ok": False, "failed": failed, "versions": versions})

    def _answer(self) -> dict:
        return {"ok": True, "results": self.results}

    def _ttl(self, op: Op) -> int:
        return self.bucket.default_ttl if op.ttl is None else op.ttl

    def _quota_reached(self, op: Op) -> Forbidden:
        limit = self.principal.quotas.max_keys_per_bucket
        return Forbidden(f"ops[{op.index}]: {key_quota_reached(limit).detail}")

    def _count(self, op: Op, found: int) -> None:
        self.results[op.index] = {
            "prefix": op.prefix,
            "count": min(found, COUNT_CAP),
            "more": found > COUNT_CAP,
        }

    def _delete_prefix(self, op: Op) -> None:
        changes: list[Changed] = []
        live, removed = statements.delete_prefix(
            self.bucket.id, op.prefix, self.delete_left + 1, changes
        )
        self.changes.append((op.index, changes))
        if removed > self.delete_left:
            raise BadRequest(
                f"ops[{op.index}]: a transaction's delete_prefix ops delete at most "
                f"{DELETE_PREFIX_MAX} keys together, and this prefix holds more: nothing was "
                "applied; use longer prefixes, in several transactions"
            )
        self.delete_left -= removed
        self.results[op.index] = {"prefix": op.prefix, "deleted": live}

    # PostgreSQL: batched statements.

    def batched(self) -> dict:
        self._start()
        plan = self.plan
        if plan.checks or not self.create or any(op.kind == "delete" for op in plan.ops):
            locked = sorted({c.key for c in plan.checks} | set(plan.written_keys))
            self._decide_checks(statements.lock_versions(self.bucket.id, locked))
        # Else no check to decide, and the upserts lock their rows in key order themselves
        # (statements.set_many, increment_many): the statement is saved.
        for group in groups(plan.ops):
            self._run_group(group)
        if self.recording:  # not when the bucket's lock says nobody watches (transaction_lock)
            self.changes.sort(key=lambda indexed: indexed[0])
            history.record(self.bucket.id, [c for _, changes in self.changes for c in changes])
        return self._answer()

    def _keep(self, ops: list[Op], changes: list[Changed]) -> None:
        """Keep the changes of point writes `ops` (one key each) under their ops' indexes."""
        index = {op.key: op.index for op in ops}
        self.changes.extend((index[c.key], [c]) for c in changes)

    def _run_group(self, group: list[Op]) -> None:
        """Reads first, then point writes, then delete_prefix ops in order: groups() made
        sure none of them sees a result this order changes."""
        bucket_id = self.bucket.id
        of = {kind: [op for op in group if op.kind == kind] for kind in _FIELDS}
        if of["get"]:
            found = statements.get_many(bucket_id, list({op.key for op in of["get"]}))
            for op in of["get"]:
                item = found.get(op.key)
                self.results[op.index] = (
                    {"key": op.key, "value": None}
                    if item is None
                    else {"key": op.key, **encode_value(item[0]), "version": str(item[1])}
                )
        if of["count"]:
            counts = statements.count_prefixes(
                bucket_id, [op.prefix for op in of["count"]], COUNT_CAP
            )
            for op, keys in zip(of["count"], counts, strict=True):
                self._count(op, keys)
        if of["set"]:
            sets = of["set"]
            changes: list[Changed] = []
            versions = statements.set_many(
                bucket_id,
                [op.key for op in sets],
                [op.value for op in sets],
                [self._ttl(op) for op in sets],
                self.create,
                changes,
            )
            self._keep(sets, changes)
            for op in sets:
                if op.key not in versions:
                    raise self._quota_reached(op)
                self.results[op.index] = {"key": op.key, "version": str(versions[op.key])}
        if of["increment"]:
            self._increments(of["increment"])
        if of["delete"]:
            changes = []
            deleted = statements.delete_many(bucket_id, [op.key for op in of["delete"]], changes)
            self._keep(of["delete"], changes)
            for op in of["delete"]:
                self.results[op.index] = {"key": op.key, "deleted": op.key in deleted}
        for op in of["delete_prefix"]:
            self._delete_prefix(op)

    def _increments(self, ops: list[Op]) -> None:
        changes: list[Changed] = []
        try:
            with transaction.atomic():  # a savepoint: a failed batch can be looked into
                counted = statements.increment_many(
                    self.bucket.id,
                    [op.key for op in ops],
                    [op.by for op in ops],
                    [self._ttl(op) for op in ops],
                    self.create,
                    changes,
                )
        except statements.NotAnInteger as exc:
            raise self._failed_increment(ops, str(exc)) from None
        self._keep(ops, changes)
        for op in ops:
            if op.key not in counted:
                raise self._quota_reached(op)
            value, version = counted[op.key]
            self.results[op.index] = {"key": op.key, "value": value, "version": str(version)}

    def _failed_increment(self, ops: list[Op], why: str) -> BadRequest:
        """Which increment of a failed batch failed, read from the values it would have added
        to (error path only: one more statement)."""
        found = statements.get_many(self.bucket.id, [op.key for op in ops])
        for op in ops:
            item = found.get(op.key)
            number = 0 if item is None else statements.parse_integer(item[0])
            if number is None:
                why = "the key's value is not an integer, so it cannot be incremented"
            elif not statements.INT64_MIN <= number + op.by <= statements.INT64_MAX:
                why = "the result would not fit in a 64-bit integer"
            else:
                continue
            return BadRequest(f"ops[{op.index}]: {why}; nothing was applied")
        return BadRequest(f"ops[{ops[0].index}]: {why}; nothing was applied")

    # SQLite: the single statements, one op at a time.

    def one_by_one(self) -> dict:
        self._start()
        bucket_id = self.bucket.id
        with statements.embedded_write_lock(), transaction.atomic():
            current = {}
            for check in self.plan.checks:
                version = statements.current_version(bucket_id, check.key)
                if version is not None:
                    current[check.key] = version
            self._decide_checks(current)
            for op in self.plan.ops:
                self._run_one(op)
        return self._answer()

    def _run_one(self, op: Op) -> None:
        bucket_id, key = self.bucket.id, op.key
        if op.kind == "set":
            version = statements.set_value(bucket_id, key, op.value, self._ttl(op), self.create)
            if version is None:
                raise self._quota_reached(op)
            self.results[op.index] = {"key": key, "version": str(version)}
        elif op.kind == "increment":
            try:
                counted = statements.increment(bucket_id, key, op.by, self._ttl(op), self.create)
            except statements.NotAnInteger as exc:
                raise BadRequest(f"ops[{op.index}]: {exc}; nothing was applied") from None
            if counted is None:
                raise self._quota_reached(op)
            self.results[op.index] = {
                "key": key,
                "value": counted.value,
                "version": str(counted.version),
            }
        elif op.kind == "delete":
            self.results[op.index] = {"key": key, "deleted": statements.delete_key(bucket_id, key)}
        elif op.kind == "get":
            item = statements.get_item(bucket_id, key)
            self.results[op.index] = (
                {"key": key, "value": None}
                if item is None
                else {"key": key, **encode_value(item[0]), "version": str(item[1])}
            )
        elif op.kind == "count":
            self._count(op, statements.count_prefixes(bucket_id, [op.prefix], COUNT_CAP)[0])
        else:
            self._delete_prefix(op)  # SQLite: recorded by the statement, in op order


def groups(ops: tuple[Op, ...]) -> Iterator[list[Op]]:
    """The ops in runs that _run_group may apply reads first, then point writes, then
    delete_prefix ops: a run ends before an op whose result that order would change (a read
    of a key the run writes or deletes by prefix, a write of a key the run deletes by prefix)."""
    group: list[Op] = []
    written: set[str] = set()
    swept: list[str] = []  # the run's delete_prefix prefixes
    for op in ops:
        if group and _sees_earlier(op, written, swept):
            yield group
            group, written, swept = [], set(), []
        group.append(op)
        if op.kind in POINT_WRITES:
            written.add(op.key)
        elif op.kind == "delete_prefix":
            swept.append(op.prefix)
    if group:
        yield group


def _sees_earlier(op: Op, written: set[str], swept: list[str]) -> bool:
    if op.kind == "count":
        return any(key.startswith(op.prefix) for key in written) or any(
            p.startswith(op.prefix) or op.prefix.startswith(p) for p in swept
        )
    if op.kind == "delete_prefix":
        return False  # runs after the run's point writes and earlier delete_prefix ops anyway
    if op.kind == "get" and op.key in written:
        return True
    return any(op.key.startswith(p) for p in swept)
