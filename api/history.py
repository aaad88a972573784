"""Each bucket's history of changes: what watchers are sent (api.watching), in commit order.

Every write to a watched bucket records its changes in api_change, in its own transaction, with
the bucket's next positions, drawn from the bucket's api_changehead row. That row's lock is held
until the write commits, so of two writes to a bucket the one that commits later draws the
higher positions: a watcher that has seen everything up to a position and asks for what comes
after it can never miss a change that commits late.

A transaction runs at REPEATABLE READ, where moving a head row that writers moved since the
transaction began would fail it. So each bucket also has a lock of its own (a PostgreSQL advisory
lock, bucket_lock): single writes take it shared, first thing in their statement, and a
transaction takes it exclusive before its BEGIN, for as long as it runs. While a transaction runs,
no one else writes the bucket, so its snapshot sees the head as it is; single writes go on side by
side as before, queueing only on the head row at commit. The sweep of expired keys and a bucket
delete take it exclusive too. Everyone takes the bucket lock first, then key rows, then the head
row: no one waits in a circle.

A bucket is watched from a watch's opening (start_watching) until THISDB_WATCH_HISTORY after its
last watch ended (the hubs push the end on while watches are open: keep_watching). Writes to a
bucket nobody watches record nothing: they find no watched head row, and lock none. A single
write records through a function (api_record_change, api migration 0006), whose query sees what
committed before it ran, after the bucket lock was taken: the write's statement itself sees only
what committed before it began, which for a write that waited on a starting watch's lock is a
bucket nobody watched. A watch that opens after recording had stopped moves the head by one with
no change there, so a position from before cannot go on (reset).

The embedded SQLite default serializes its writes anyway (api.statements): record() there simply
takes the next positions.
"""

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from api.models import VERSION_SEQUENCE, Change, ChangeHead, Item
from api.renderers import encode_value  # the listing's form of a value

_C = Change._meta.db_table
_H = ChangeHead._meta.db_table
_T = Item._meta.db_table
_KEY = connection.ops.quote_name("key")
_PG = connection.vendor == "postgresql"
# The bucket locks' class (the first key of a two-key advisory lock: "tdbh"), apart from any
# other user of advisory locks in the database; the second key is a hash of the bucket's id (two
# buckets sharing a hash only share a lock).
LOCK_CLASS = 0x74646268
SHARED_LOCK = f"pg_advisory_xact_lock_shared({LOCK_CLASS}, hashtext(%s))"
_COLUMNS = f"bucket_id, position, deleted, {_KEY}, value, version, expires_at, reason, at"

SWEEP_BATCH = 5000  # history rows a statement (about 10 ms)
READ_BATCH = 1000  # changes a read hands a watcher at most; the next read goes on from there


# PostgreSQL's single writes (api.statements) wrap their statement in these: the bucket lock
# (shared) first, then the statement, whose changed row (at most one) is recorded at the bucket's
# next position, if it is watched, by a function (api migration 0006) that asks after the lock
# was taken, where the statement's own view is from before it: a watch that started while the
# write waited for the lock is seen.
def logged_put(statement: str, returning: str) -> str:
    """A set or increment `statement` (an INSERT ... SELECT ... FROM locked, or an UPDATE ...
    FROM locked, of the item aliased `item`, without RETURNING) that also records its put; it
    answers `returning` (columns named r0, r1...) and the put's position (None: not recorded).
    Parameters: the bucket id, the statement's, then the bucket id."""
    return (
        f"WITH locked AS (SELECT {SHARED_LOCK}), "
        f"w AS ({statement} RETURNING {returning}, item.{_KEY} AS h_key, "
        "item.value AS h_value, item.version AS h_version, item.expires_at AS h_expires) "
        f"SELECT {_names(returning)}, "
        "api_record_change(%s, false, w.h_key, w.h_value, w.h_version, w.h_expires, '') FROM w"
    )


def logged_delete(statement: str, returning: str, reason: str) -> str:
    """A DELETE `statement` (DELETE ... USING locked, of the item aliased `item`, without
    RETURNING) that also records its delete, with a new version and `reason` (an SQL expression
    over w's columns). Parameters as for logged_put."""
    return (
        f"WITH locked AS (SELECT {SHARED_LOCK}), "
        f"w AS ({statement} RETURNING {returning}, item.{_KEY} AS h_key) "
        f"SELECT {_names(returning)}, "
        f"api_record_change(%s, true, w.h_key, NULL, NULL, NULL, {reason}) FROM w"
    )


def logged_puts(statement: str) -> str:
    """A many-row upsert `statement` (an INSERT ... SELECT ... FROM locked, of the item aliased
    `item`, without RETURNING: an import's batch) that also records its puts, in key order, at
    the bucket's next positions if it is watched, and answers how many rows it created (rows
    that were there already, live or expired, are not counted). Parameters: the bucket id, the
    statement's, then the bucket id twice."""
    return (
        f"WITH locked AS (SELECT {SHARED_LOCK}), "
        f"w AS ({statement} RETURNING item.{_KEY} AS h_key, item.value AS h_value, "
        "item.version AS h_version, item.expires_at AS h_expires, item.xmax = 0 AS created), "
        "n AS (SELECT count(*) AS rows FROM w), "
        "h AS (SELECT api_take_positions(%s, n.rows) AS position, n.rows FROM n "
        "WHERE n.rows > 0), "
        f"c AS (INSERT INTO {_C} ({_COLUMNS}) SELECT %s, "
        f'h.position - h.rows + row_number() OVER (ORDER BY w.h_key COLLATE "C"), false, '
        "w.h_key, w.h_value, w.h_version, w.h_expires, '', statement_timestamp() FROM w, h "
        "WHERE h.position IS NOT NULL) "
        "SELECT count(*) FILTER (WHERE created) FROM w"
    )


@contextmanager
def transaction_lock(bucket_id: str) -> Iterator[bool]:
    """The bucket's lock for a transaction, from before its BEGIN until after its COMMIT
    (PostgreSQL), in one round trip (api migration 0005's function): exclusive if the bucket is
    watched (its REPEATABLE READ snapshot then sees the head as it is, and no write comes between
    it and its record), else shared, like a single write's (transactions of an unwatched bucket
    run side by side, and a watch that starts waits for them: start_watching). Gives whether the
    bucket is watched: if not, it stays so until the lock is let go, and the transaction has
    nothing to record."""
    if not _PG:
        yield True  # the embedded SQLite's record() finds out for itself
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_transaction_lock(%s)", [bucket_id])
        watched = cursor.fetchone()[0]
    try:
        yield watched
    finally:
        with connection.cursor() as cursor:
            cursor.execute(_TRANSACTION_UNLOCK[watched], [bucket_id])


_TRANSACTION_UNLOCK = {
    True: f"SELECT pg_advisory_unlock({LOCK_CLASS}, hashtext(%s))",
    False: f"SELECT pg_advisory_unlock_shared({LOCK_CLASS}, hashtext(%s))",
}


@contextmanager
def bucket_lock(bucket_ids: list[str], *, session: bool = False) -> Iterator[None]:
    """The exclusive lock of these buckets (PostgreSQL; in id order, so two holders of several
    never wait in a circle): for the current transaction, or with `session` from now until the
    block ends, across transactions (a transaction takes it before its BEGIN: its snapshot then
    sees every write of the bucket before it)."""
    if not _PG or not bucket_ids:
        yield
        return
    ordered = sorted(set(bucket_ids))
    kind = "pg_advisory_lock" if session else "pg_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {kind}({LOCK_CLASS}, hashtext(b)) FROM unnest(%s::text[]) AS b "
            'ORDER BY b COLLATE "C"',
            [ordered],
        )
    try:
        yield
    finally:
        if session:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT pg_advisory_unlock({LOCK_CLASS}, hashtext(b)) "
                    "FROM unnest(%s::text[]) AS b",
                    [ordered],
                )


def _names(returning: str) -> str:
    return ", ".join(re.findall(r" AS (r\d+)", returning))


@dataclass(frozen=True, slots=True)
class Changed:
    """A change a write made, for record(): a put (value, expiry) or a delete (reason)."""

    key: str
    deleted: bool = False
    value: bytes | None = None
    version: int | None = None  # None: a delete, which draws a new version when recorded
    expires_at: datetime | None = None
    reason: str = ""


_RECORD_SQL = (
    f"WITH h AS (UPDATE {_H} SET position = position + %s WHERE bucket_id = %s "
    "AND watched_until > statement_timestamp() RETURNING position) "
    f"INSERT INTO {_C} ({_COLUMNS}) "
    "SELECT %s, h.position - %s + u.n, u.d, u.k, u.v, "
    f"COALESCE(u.ver, nextval('{VERSION_SEQUENCE}')), u.e, u.r, statement_timestamp() "
    "FROM h, unnest(%b::bool[], %b::text[], %b::bytea[], %b::bigint[], %b::timestamptz[], "
    "%b::text[]) WITH ORDINALITY AS u(d, k, v, ver, e, r, n)"  # binary arrays: no escaping
)


def record(bucket_id: str, changes: list[Changed]) -> None:
    """Record `changes`, in this order, at the bucket's next positions (one statement on
    PostgreSQL), in a transaction that holds the bucket's lock (bucket_lock), if the bucket is
    watched. Call it last: it holds the bucket's head until commit."""
    if not changes:
        return
    n = len(changes)
    with connection.cursor() as cursor:
        if _PG:
            cursor.execute(
                _RECORD_SQL,
                [
                    n,
                    bucket_id,
                    bucket_id,
                    n,
                    [c.deleted for c in changes],
                    [c.key for c in changes],
                    [c.value for c in changes],
                    [c.version for c in changes],
                    [c.expires_at for c in changes],
                    [c.reason for c in changes],
                ],
            )
            return
        _sqlite_record(cursor, bucket_id, changes)


def _sqlite_record(cursor, bucket_id: str, changes: list[Changed]) -> None:
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    cursor.execute(
        f"UPDATE {_H} SET position = position + %s WHERE bucket_id = %s AND watched_until > %s "
        "RETURNING position",
        [len(changes), bucket_id, now],
    )
    moved = cursor.fetchone()
    if moved is None:
        return  # not watched: nothing recorded
    first = moved[0] - len(changes) + 1
    rows = []
    for offset, c in enumerate(changes):
        version = c.version
        if version is None:
            cursor.execute("UPDATE api_version_clock SET last = last + 1 RETURNING last")
            version = cursor.fetchone()[0]
        expires = connection.ops.adapt_datetimefield_value(c.expires_at)
        rows.append(
            [bucket_id, first + offset, c.deleted, c.key, c.value, version, expires, c.reason, now]
        )
    cursor.executemany(
        f"INSERT INTO {_C} ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows
    )


def record_bucket_deleted(bucket_id: str) -> None:
    """Inside the bucket's delete, holding its lock (bucket_lock), before its keys go: a delete
    (reason bucket_deleted) for each of its live keys, in key order, if it is watched."""
    if not is_watched(bucket_id):
        return
    now = "statement_timestamp()" if _PG else "%s"
    live = f"(expires_at IS NULL OR expires_at > {now})"
    with connection.cursor() as cursor:
        params: list = [bucket_id]
        if not _PG:
            params.append(connection.ops.adapt_datetimefield_value(timezone.now()))
        cursor.execute(
            f"SELECT {_KEY} FROM {_T} WHERE bucket_id = %s AND {live} ORDER BY {_KEY}", params
        )
        gone = [Changed(key, deleted=True, reason="bucket_deleted") for (key,) in cursor.fetchall()]
    record(bucket_id, gone)


# Reading.


@dataclass(frozen=True, slots=True)
class Event:
    """A change as a watcher is sent it."""

    position: int
    deleted: bool
    key: str
    value: bytes | None
    version: int
    expires_at: datetime | None
    reason: str

    @property
    def kind(self) -> str:
        return "delete" if self.deleted else "put"

    def data(self, now: datetime) -> dict:
        """The event's JSON fields (SSE's data line; long-poll's event, with id and type)."""
        if self.deleted:
            return {"key": self.key, "version": str(self.version), "reason": self.reason}
        assert self.value is not None
        return {
            "key": self.key,
            **encode_value(self.value),
            "version": str(self.version),
            "ttl": ttl_left(self.expires_at, now),
        }


def ttl_left(expires_at: datetime | None, now: datetime) -> int:
    """Whole seconds left, rounded up (at least 1); 0: never expires (as in listings)."""
    if expires_at is None:
        return 0
    return max(1, math.ceil((expires_at - now).total_seconds()))


def _aware(expires_at) -> datetime | None:
    """An expiry as read by raw SQL: SQLite gives its stored text or a naive datetime, in UTC."""
    if expires_at is None:
        return None
    parsed = expires_at if isinstance(expires_at, datetime) else parse_datetime(expires_at)
    assert parsed is not None, expires_at
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def start_watching(bucket_id: str) -> int:
    """Record the bucket's changes from now until THISDB_WATCH_HISTORY seconds after its watches
    end, and return its last position. Taken under the bucket's exclusive lock, which waits for
    the writes already running: every write after it records, so none falls between this
    position and the next. When recording had stopped (no watch for longer than the history is
    kept), the position skips one: a position from before then has no way on (reset)."""
    now = "statement_timestamp()" if _PG else "%s"
    until = timezone.now() + timedelta(seconds=settings.THISDB_WATCH_HISTORY)
    sql = (
        f"INSERT INTO {_H} AS head (bucket_id, position, watched_until) VALUES (%s, 0, %s) "
        "ON CONFLICT (bucket_id) DO UPDATE SET position = head.position + CASE WHEN "
        f"head.watched_until IS NULL OR head.watched_until <= {now} THEN 1 ELSE 0 END, "
        "watched_until = excluded.watched_until RETURNING position"
    )
    params: list = [bucket_id, connection.ops.adapt_datetimefield_value(until)]
    if not _PG:
        params.append(connection.ops.adapt_datetimefield_value(timezone.now()))
    with transaction.atomic(), bucket_lock([bucket_id]), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def keep_watching(bucket_ids: list[str]) -> None:
    """Push the end of these buckets' recording to THISDB_WATCH_HISTORY from now (their watches
    are open: api.watchhub, every THISDB_WATCH_RECHECK_SECONDS). Under each bucket's lock,
    shared: a transaction, which holds it exclusive, never sees its head row move."""
    until = connection.ops.adapt_datetimefield_value(
        timezone.now() + timedelta(seconds=settings.THISDB_WATCH_HISTORY)
    )
    with transaction.atomic(), connection.cursor() as cursor:
        if _PG:
            cursor.execute(
                f"SELECT {SHARED_LOCK.replace('%s', 'b')} FROM unnest(%s::text[]) AS b "
                'ORDER BY b COLLATE "C"',
                [sorted(bucket_ids)],
            )
            cursor.execute(
                f"UPDATE {_H} SET watched_until = %s WHERE bucket_id = ANY(%s)",
                [until, bucket_ids],
            )
            return
        for bucket_id in bucket_ids:
            cursor.execute(
                f"UPDATE {_H} SET watched_until = %s WHERE bucket_id = %s", [until, bucket_id]
            )


def is_watched(bucket_id: str) -> bool:
    """Whether the bucket's changes are being recorded."""
    return ChangeHead.objects.filter(bucket_id=bucket_id, watched_until__gt=timezone.now()).exists()


def head(bucket_id: str) -> int:
    """The bucket's last position (0: no change yet)."""
    row = ChangeHead.objects.filter(bucket_id=bucket_id).values_list("position").first()
    return 0 if row is None else row[0]


_READ_SQL = (
    f"SELECT position, deleted, {_KEY}, value, version, expires_at, reason FROM {_C} "
    "WHERE bucket_id = %s AND position > %s ORDER BY position LIMIT %s"
)


def read_after(bucket_id: str, after: int, limit: int = READ_BATCH) -> list[Event]:
    """The bucket's changes after position `after`, in order, at most `limit` (one index range
    scan of the primary key)."""
    with connection.cursor() as cursor:
        cursor.execute(_READ_SQL, [bucket_id, after, limit])
        rows = cursor.fetchall()
    return [event(row) for row in rows]


def event(row) -> Event:
    position, deleted, key, value, version, expires_at, reason = row
    expires_at = _aware(expires_at)
    return Event(
        position,
        bool(deleted),
        key,
        None if value is None else bytes(value),
        version,
        expires_at,
        reason,
    )


def live_items(bucket_id: str, lo: str, hi: str, limit: int) -> list[tuple]:
    """The live keys with lo <= key < hi, in key order, at most `limit`: (key, value, version,
    expires_at) each (a snapshot's puts)."""
    now = "statement_timestamp()" if _PG else "%s"
    sql = (
        f"SELECT {_KEY}, value, version, expires_at FROM {_T} WHERE bucket_id = %s "
        f"AND {_KEY} >= %s AND {_KEY} < %s AND (expires_at IS NULL OR expires_at > {now}) "
        f"ORDER BY {_KEY} LIMIT %s"
    )
    params: list = [bucket_id, lo, hi]
    if not _PG:
        params.append(connection.ops.adapt_datetimefield_value(timezone.now()))
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, limit])
        rows = cursor.fetchall()
    return [(key, bytes(value), version, _aware(expires)) for key, value, version, expires in rows]


@contextmanager
def one_snapshot() -> Iterator[None]:
    """A transaction whose statements all see one snapshot: REPEATABLE READ on PostgreSQL (inside
    a caller's transaction, that one's); SQLite's read transaction is one snapshot already."""
    nested = connection.in_atomic_block
    with transaction.atomic():
        if _PG and not nested:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


# Sweeping (beat).


def sweep(now: datetime, batch: int = SWEEP_BATCH) -> int:
    """Delete changes older than THISDB_WATCH_HISTORY seconds, `batch` rows a statement, and
    the heads of deleted buckets whose history is gone; returns the changes deleted. A watcher
    that asks for a swept position is told to list again (api.watching: reset)."""
    cutoff = connection.ops.adapt_datetimefield_value(
        now - timedelta(seconds=settings.THISDB_WATCH_HISTORY)
    )
    if _PG:
        sql = (
            f"DELETE FROM {_C} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {_C} WHERE at < %s "
            "LIMIT %s))"
        )
    else:
        sql = f"DELETE FROM {_C} WHERE rowid IN (SELECT rowid FROM {_C} WHERE at < %s LIMIT %s)"
    total = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(sql, [cutoff, batch])
            total += cursor.rowcount
            if cursor.rowcount < batch:
                break
        cursor.execute(
            f"DELETE FROM {_H} WHERE NOT EXISTS (SELECT 1 FROM api_bucket b "
            f"WHERE b.id = {_H}.bucket_id) AND NOT EXISTS (SELECT 1 FROM {_C} c "
            f"WHERE c.bucket_id = {_H}.bucket_id)"
        )
    return total
