"""The data operations of the v1 API: each is one SQL statement.

One statement each keeps the hot path at one round trip and makes every operation atomic without
locks: two racing increments cannot lose an update, a set cannot interleave with a delete. The
viewsets call these functions; tests call them directly too.

Time is the database's: on PostgreSQL a statement reads statement_timestamp() for the expiry it
writes and the expiry it filters on, so both are the same instant and no time travels as a
parameter. The
embedded SQLite default passes the process's clock instead.
"""

import math
import threading
import time
from datetime import UTC, datetime, timedelta

from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from api.inputs import INT64_MAX, INT64_MIN
from api.models import Item, Token

_T = Item._meta.db_table
_KEY = connection.ops.quote_name("key")
_PG = connection.vendor == "postgresql"
if _PG:
    # The statement's own start, not its transaction's (now()): the same instant throughout one
    # statement, and the true time even inside a long transaction.
    _NOW = "statement_timestamp()"
    # ttl seconds from now, or NULL (never) for 0: one parameter, the ttl itself
    _EXPIRES = f"{_NOW} + NULLIF(%s, 0) * interval '1 second'"
    _TTL_LEFT = (  # whole seconds left, rounded up; 0 = never expires
        "CASE WHEN expires_at IS NULL THEN 0 "
        f"ELSE GREATEST(1, CEIL(EXTRACT(EPOCH FROM expires_at - {_NOW})))::bigint END"
    )
else:
    _NOW = "%s"
    _EXPIRES = "%s"
    _TTL_LEFT = "expires_at"  # turned into seconds in Python (list_page)
_LIVE = f"(expires_at IS NULL OR expires_at > {_NOW})"  # an expired key is never served

_SET_SQL = (
    f"INSERT INTO {_T} (bucket_id, {_KEY}, value, expires_at, updated_at) "
    f"VALUES (%s, %s, %s, {_EXPIRES}, {_NOW}) "
    f"ON CONFLICT (bucket_id, {_KEY}) DO UPDATE SET value = excluded.value, "
    f"expires_at = excluded.expires_at, updated_at = excluded.updated_at"
)
# Used instead of _SET_SQL when the bucket is at its key quota: existing keys may still change.
_UPDATE_SQL = (
    f"UPDATE {_T} SET value = %s, expires_at = {_EXPIRES}, updated_at = {_NOW} "
    f"WHERE bucket_id = %s AND {_KEY} = %s"
)
_GET_SQL = f"SELECT value FROM {_T} WHERE bucket_id = %s AND {_KEY} = %s AND {_LIVE}"
_DELETE_SQL = f"DELETE FROM {_T} WHERE bucket_id = %s AND {_KEY} = %s RETURNING {_LIVE}"
# PostgreSQL: read, add and write in one statement. The row is locked by ON CONFLICT, so
# concurrent increments serialize on it and none is lost. A stored value that is not an integer
# makes the cast fail, which aborts the statement and leaves the value as it was.
_INCREMENT_SQL_PG = (
    f"INSERT INTO {_T} AS item (bucket_id, {_KEY}, value, expires_at, updated_at) "
    f"VALUES (%s, %s, convert_to(CAST(%s AS bigint)::text, 'UTF8'), {_EXPIRES}, {_NOW}) "
    f"ON CONFLICT (bucket_id, {_KEY}) DO UPDATE SET value = convert_to(("
    f"CASE WHEN item.expires_at IS NOT NULL AND item.expires_at <= {_NOW} THEN 0 "
    f"ELSE convert_from(item.value, 'UTF8')::bigint END + CAST(%s AS bigint)"
    f")::text, 'UTF8'), expires_at = excluded.expires_at, updated_at = excluded.updated_at "
    f"RETURNING convert_from(value, 'UTF8')::bigint"
)
_INCREMENT_EXISTING_SQL_PG = (
    f"UPDATE {_T} AS item SET value = convert_to(("
    f"CASE WHEN item.expires_at IS NOT NULL AND item.expires_at <= {_NOW} THEN 0 "
    f"ELSE convert_from(item.value, 'UTF8')::bigint END + CAST(%s AS bigint)"
    f")::text, 'UTF8'), expires_at = {_EXPIRES}, updated_at = {_NOW} "
    f"WHERE bucket_id = %s AND {_KEY} = %s RETURNING convert_from(value, 'UTF8')::bigint"
)


class BucketGone(Exception):
    """The bucket was deleted (the foreign key refused the write)."""


class NotAnInteger(Exception):
    """Increment of a value that is not a whole number, or past the 64-bit range."""


def _dt(value: datetime | None):
    return connection.ops.adapt_datetimefield_value(value)


def expiry(now: datetime, ttl: int) -> datetime | None:
    return None if ttl == 0 else now + timedelta(seconds=ttl)


def _now_params() -> list:
    """The parameters of _NOW in a statement: none on PostgreSQL, the clock on SQLite."""
    return [] if _PG else [_dt(timezone.now())]


def _expiry_params(ttl: int) -> list:
    """The parameters of _EXPIRES, _NOW (in that order) for a write of `ttl` seconds."""
    if _PG:
        return [ttl]
    now = timezone.now()
    return [_dt(expiry(now, ttl)), _dt(now)]


def set_value(bucket_id: str, key: str, value: bytes, ttl: int, create: bool = True) -> bool:
    """Write a key, replacing its value; it expires `ttl` seconds from now (0: never). Every
    write refreshes the expiry.

    With create=False only an existing key is written; False means there was none.
    """
    try:
        with connection.cursor() as cursor:
            if create:
                cursor.execute(_SET_SQL, [bucket_id, key, value, *_expiry_params(ttl)])
                return True
            cursor.execute(_UPDATE_SQL, [value, *_expiry_params(ttl), bucket_id, key])
            return cursor.rowcount > 0
    except IntegrityError as exc:
        raise BucketGone(bucket_id) from exc


def get_value(bucket_id: str, key: str) -> bytes | None:
    with connection.cursor() as cursor:
        cursor.execute(_GET_SQL, [bucket_id, key, *_now_params()])
        row = cursor.fetchone()
    return None if row is None else bytes(row[0])


def delete_key(bucket_id: str, key: str) -> bool:
    """Delete a key; True if a live key was deleted (an expired one is removed but not found)."""
    with connection.cursor() as cursor:
        cursor.execute(_DELETE_SQL, [bucket_id, key, *_now_params()])
        row = cursor.fetchone()
    return bool(row and row[0])


def increment(bucket_id: str, key: str, delta: int, ttl: int, create: bool = True) -> int | None:
    """Add `delta` to a key's integer value and return the new value; absent or expired counts
    from 0. The key expires `ttl` seconds from now (0: never). With create=False an absent key
    is not created and None is returned."""
    if _PG:
        return _increment_postgresql(bucket_id, key, delta, ttl, create)
    return _increment_locked(bucket_id, key, delta, ttl, create)


def _increment_postgresql(bucket_id, key, delta, ttl, create) -> int | None:
    if create:
        sql, params = _INCREMENT_SQL_PG, [bucket_id, key, delta, ttl, delta]
    else:
        sql, params = _INCREMENT_EXISTING_SQL_PG, [delta, ttl, bucket_id, key]
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
            return None if row is None else row[0]
    except DataError as exc:
        raise NotAnInteger(_why_not_integer(exc)) from exc
    except IntegrityError as exc:
        raise BucketGone(bucket_id) from exc


def _why_not_integer(exc: DataError) -> str:
    if getattr(exc.__cause__, "sqlstate", None) == "22003":  # numeric_value_out_of_range
        return "the result would not fit in a 64-bit integer"
    return "the key's value is not an integer, so it cannot be incremented"


# The embedded SQLite default serves one process; a lock there keeps increments from racing.
_sqlite_increment_lock = threading.Lock()


def _increment_locked(bucket_id, key, delta, ttl, create) -> int | None:
    with _sqlite_increment_lock, transaction.atomic():
        current = get_value(bucket_id, key)
        if current is None and not create and not _exists(bucket_id, key):
            return None
        number = 0 if current is None else parse_integer(current)
        if number is None:
            raise NotAnInteger("the key's value is not an integer, so it cannot be incremented")
        result = number + delta
        if not INT64_MIN <= result <= INT64_MAX:
            raise NotAnInteger("the result would not fit in a 64-bit integer")
        set_value(bucket_id, key, str(result).encode(), ttl)
        return result


def _exists(bucket_id: str, key: str) -> bool:
    return Item.objects.filter(bucket_id=bucket_id, key=key).exists()


def parse_integer(raw: bytes) -> int | None:
    """A whole number with an optional sign, as text; None if it is anything else."""
    text = raw.strip(b" \t\r\n")
    digits = text[1:] if text[:1] in (b"+", b"-") else text
    if not digits or not digits.isdigit():
        return None
    number = int(text)
    return number if INT64_MIN <= number <= INT64_MAX else None


def list_page(
    bucket_id: str, *, prefix: str, after: str | None, limit: int, with_values: bool
) -> list[tuple]:
    """One page of live keys in byte order: one index range scan with LIMIT, no OFFSET.

    Rows are (key,), or (key, value, ttl) with values: ttl the whole seconds the key has left,
    rounded up, 0 if it never expires."""
    columns = f"{_KEY}, value, {_TTL_LEFT}" if with_values else _KEY
    where = ["bucket_id = %s", _LIVE]
    params: list = [bucket_id, *_now_params()]
    if after is not None and after >= prefix:
        where.append(f"{_KEY} > %s")
        params.append(after)
    elif prefix:
        where.append(f"{_KEY} >= %s")
        params.append(prefix)
    upper = prefix_upper_bound(prefix)
    if upper is not None:
        where.append(f"{_KEY} < %s")
        params.append(upper)
    sql = f"SELECT {columns} FROM {_T} WHERE {' AND '.join(where)} ORDER BY {_KEY} LIMIT %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, limit])
        rows = cursor.fetchall()
    if with_values and not _PG:
        now = timezone.now()
        rows = [(key, value, _seconds_left(expires, now)) for key, value, expires in rows]
    return rows


def _seconds_left(expires_at: datetime | str | None, now: datetime) -> int:
    if expires_at is None:
        return 0
    if isinstance(expires_at, str):  # SQLite hands raw SQL its stored text (UTC)...
        parsed = parse_datetime(expires_at)
        assert parsed is not None, expires_at
        expires_at = parsed
    if expires_at.tzinfo is None:  # ... or a naive datetime, in UTC
        expires_at = expires_at.replace(tzinfo=UTC)
    return max(1, math.ceil((expires_at - now).total_seconds()))


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string above every string that starts with `prefix` (None: no bound).

    Byte order of UTF-8 is code point order, so bumping the last code point gives the bound.
    """
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            bumped = last + 1
            if 0xD800 <= bumped <= 0xDFFF:  # surrogates cannot be stored: skip past them
                bumped = 0xE000
            return "".join(chars) + chr(bumped)
    return None


SWEEP_BATCH = 2000  # rows a statement: about 10 ms alone, under 100 ms beside a full API load
# After each batch the sweep rests as long as the batch took: it takes at most half of one
# core, and the API's requests meet its locks and its CPU half the time (budget: GET's p99
# within 2x of without; still over 50,000 rows/s).
SWEEP_REST = 1.0


def sweep_expired_items(now: datetime, batch: int = SWEEP_BATCH, rest: float = SWEEP_REST) -> int:
    """Delete keys that expired before `now`, `batch` rows a statement; return how many.

    Live keys are never touched: both the batch and the DELETE test expires_at. On PostgreSQL
    the batch skips rows a writer holds (a key being refreshed right now), so the sweep never
    waits on the API and the API never waits long on the sweep.

    The batch is read in expires_at order, from the item_expires_at index. Without the order,
    PostgreSQL reads it with a sequential scan when most rows have expired, and the last
    statement (the one that finds fewer than `batch` rows) then reads the whole table: 80 to
    440 ms for a sweep of 1,000,000 keys, against 6 to 11 ms for any statement in index order.
    """
    skip_locked = " FOR UPDATE SKIP LOCKED" if _PG else ""
    batch_ids = (
        f"SELECT id FROM {_T} WHERE expires_at <= %s ORDER BY expires_at LIMIT %s{skip_locked}"
    )
    if _PG:
        # The batch as an array: the DELETE then finds its rows by primary key whatever the
        # planner thinks of the table (an IN (...) was planned as a hash join over a full scan).
        sql = f"DELETE FROM {_T} WHERE id = ANY(ARRAY({batch_ids})) AND expires_at <= %s"
    else:
        sql = f"DELETE FROM {_T} WHERE id IN ({batch_ids}) AND expires_at <= %s"
    total = 0
    while True:
        started = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute(sql, [_dt(now), batch, _dt(now)])
            deleted = cursor.rowcount
        total += deleted
        if deleted < batch:
            return total
        time.sleep((time.monotonic() - started) * rest)


def sweep_expired_tokens(now: datetime) -> int:
    """Delete tokens that expired before `now` (one DELETE; nothing refers to tokens)."""
    deleted, _ = Token.objects.filter(expires_at__lte=now).delete()
    return deleted
