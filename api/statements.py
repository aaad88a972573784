"""The data operations of the v1 API: each is one SQL statement.

One statement each keeps the hot path at one round trip and makes every operation atomic without
locks: two racing increments cannot lose an update, a set cannot interleave with a delete. The
viewsets call these functions; tests call them directly too.

Time is the database's: on PostgreSQL a statement reads statement_timestamp() for the expiry it
writes and the expiry it filters on, so both are the same instant and no time travels as a
parameter. The
embedded SQLite default passes the process's clock instead.
"""

import json
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from api import history, notify
from api.history import Changed
from api.inputs import INT64_MAX, INT64_MIN
from api.models import VERSION_SEQUENCE, Item, Token

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

_ITEM_LIVE = f"(item.expires_at IS NULL OR item.expires_at > {_NOW})"
_NEXT_VERSION = f"nextval('{VERSION_SEQUENCE}')"
_CURRENT_VERSION_SQL = f"SELECT version FROM {_T} WHERE bucket_id = %s AND {_KEY} = %s AND {_LIVE}"
_GET_SQL = f"SELECT value, version FROM {_T} WHERE bucket_id = %s AND {_KEY} = %s AND {_LIVE}"
# A delete of an expired row (not found, 404) is recorded too, as its expiry: watchers learn of
# it now, as they would from the sweep.
_DELETE_SQL = history.logged_delete(
    f"DELETE FROM {_T} AS item USING locked WHERE bucket_id = %s AND {_KEY} = %s",
    f"{_LIVE} AS r0",
    "CASE WHEN w.r0 THEN 'deleted' ELSE 'expired' END",
)

# PostgreSQL's writes. The version is drawn in the SET clause, after ON CONFLICT has locked the
# row: a writer that waited for another draws after it, so a key's versions only grow.
# An increment reads, adds and writes in one statement: concurrent increments serialize on the
# row lock and none is lost. A stored value that is not an integer makes the cast fail, which
# aborts the statement and leaves the value as it was.
_SET_VALUE = "%s"
_INCREMENT_VALUE = (
    "convert_to((CASE WHEN item.expires_at IS NOT NULL AND item.expires_at <= "
    f"{_NOW} THEN 0 ELSE convert_from(item.value, 'UTF8')::bigint END + CAST(%s AS bigint)"
    ")::text, 'UTF8')"
)
_FIRST_COUNT = "convert_to(CAST(%s AS bigint)::text, 'UTF8')"
_RETURN = {
    "set": "item.version AS r0",
    "increment": "convert_from(item.value, 'UTF8')::bigint AS r0, item.version AS r1",
}


def _upsert_sql(kind: str, only_if_absent: bool) -> str:
    first = _SET_VALUE if kind == "set" else _FIRST_COUNT
    again = "excluded.value" if kind == "set" else _INCREMENT_VALUE
    sql = (
        f"INSERT INTO {_T} AS item (bucket_id, {_KEY}, value, expires_at, updated_at) "
        f"SELECT %s, %s, {first}, {_EXPIRES}, {_NOW} FROM locked "
        f"ON CONFLICT (bucket_id, {_KEY}) DO UPDATE SET value = {again}, "
        f"expires_at = excluded.expires_at, updated_at = excluded.updated_at, "
        f"version = {_NEXT_VERSION}"
    )
    if only_if_absent:  # If-None-Match: *: only over an expired row
        sql += f" WHERE NOT {_ITEM_LIVE}"
    return history.logged_put(sql, _RETURN[kind])


def _update_sql(kind: str, where: str) -> str:
    value = _SET_VALUE if kind == "set" else _INCREMENT_VALUE
    return history.logged_put(
        f"UPDATE {_T} AS item SET value = {value}, expires_at = {_EXPIRES}, "
        f"updated_at = {_NOW}, version = {_NEXT_VERSION} FROM locked "
        f"WHERE bucket_id = %s AND {_KEY} = %s{where}",
        _RETURN[kind],
    )


# The WHERE a condition adds to an UPDATE (the key's state it requires), by Condition.kind.
_REQUIRES = {
    None: "",  # any row, expired or not (create=False: the key quota is full)
    "exists": f" AND {_ITEM_LIVE}",
    "absent": f" AND NOT {_ITEM_LIVE}",
    "versions": f" AND {_ITEM_LIVE} AND item.version = ANY(%s)",
}
_PG_SQL = {
    (kind, create, condition): (
        _upsert_sql(kind, condition == "absent")
        if create
        else _update_sql(kind, _REQUIRES[condition])
    )
    for kind in ("set", "increment")
    for create in (True, False)
    for condition in _REQUIRES
    # Creating is an upsert; a key that must exist is only ever updated.
    if not (create and condition in ("exists", "versions"))
}
_DELETE_LIVE_SQL = history.logged_delete(
    f"DELETE FROM {_T} AS item USING locked WHERE bucket_id = %s AND {_KEY} = %s AND {_ITEM_LIVE}",
    "true AS r0",
    "'deleted'",
)
_DELETE_IF_SQL = history.logged_delete(
    f"DELETE FROM {_T} AS item USING locked WHERE bucket_id = %s AND {_KEY} = %s "
    f"AND {_ITEM_LIVE} AND item.version = ANY(%s)",
    "true AS r0",
    "'deleted'",
)


class BucketGone(Exception):
    """The bucket was deleted (the foreign key refused the write)."""


class NotAnInteger(Exception):
    """Increment of a value that is not a whole number, or past the 64-bit range."""


class PreconditionFailed(Exception):
    """A conditional write's condition did not hold: nothing was written."""

    def __init__(self, current: int | None):
        super().__init__(current)
        self.current = current  # the key's version now; None: the key does not exist


@dataclass(frozen=True, slots=True)
class Condition:
    """What a write requires of the key as it is when the write runs.

    kind "versions": the key exists with one of `versions` (If-Match: "v1", "v2");
    "exists": the key exists (If-Match: *); "absent": it does not (If-None-Match: *).
    An expired key does not exist.
    """

    kind: str
    versions: tuple[int, ...] = ()

    def holds(self, current: int | None) -> bool:
        if self.kind == "absent":
            return current is None
        if current is None:
            return False
        return self.kind == "exists" or current in self.versions


class Counted(NamedTuple):
    value: int
    version: int


def _dt(value: datetime | None):
    return connection.ops.adapt_datetimefield_value(value)


def expiry(now: datetime, ttl: int) -> datetime | None:
    return None if ttl == 0 else now + timedelta(seconds=ttl)


def _now_params() -> list:
    """The parameters of _NOW in a statement: none on PostgreSQL, the clock on SQLite."""
    return [] if _PG else [_dt(timezone.now())]


def set_value(
    bucket_id: str,
    key: str,
    value: bytes,
    ttl: int,
    create: bool = True,
    condition: Condition | None = None,
) -> int | None:
    """Write a key, replacing its value; it expires `ttl` seconds from now (0: never). Every
    write refreshes the expiry. Returns the key's new version.

    With create=False only an existing key is written; None means there was none. A
    `condition` is decided by the same statement; PreconditionFailed when it does not hold.
    """
    if not _PG:
        return _sqlite_set_value(bucket_id, key, value, ttl, create, condition)
    kind = condition.kind if condition else None
    create = create and kind in (None, "absent")  # a key that must exist is only updated
    sql = _PG_SQL["set", create, kind]
    if create:
        params = [bucket_id, key, value, ttl]
    else:
        params = [value, ttl, bucket_id, key, *_versions_param(condition)]
    row = _write(sql, [bucket_id, *params, bucket_id], bucket_id)
    if row is None:
        _check_missed(bucket_id, key, condition)
        return None
    return row[0]


def increment(
    bucket_id: str,
    key: str,
    delta: int,
    ttl: int,
    create: bool = True,
    condition: Condition | None = None,
) -> Counted | None:
    """Add `delta` to a key's integer value; returns the new value and version. Absent or
    expired counts from 0. The key expires `ttl` seconds from now (0: never). With create=False
    an absent key is not created and None is returned; a `condition` as for set_value."""
    if not _PG:
        return _sqlite_increment(bucket_id, key, delta, ttl, create, condition)
    kind = condition.kind if condition else None
    create = create and kind in (None, "absent")  # a key that must exist is only updated
    sql = _PG_SQL["increment", create, kind]
    if create:
        params = [bucket_id, key, delta, ttl, delta]
    else:
        params = [delta, ttl, bucket_id, key, *_versions_param(condition)]
    try:
        row = _write(sql, [bucket_id, *params, bucket_id], bucket_id)
    except DataError as exc:
        raise NotAnInteger(why_not_integer(exc)) from exc
    if row is None:
        _check_missed(bucket_id, key, condition)
        return None
    return Counted(row[0], row[1])


def _versions_param(condition: Condition | None) -> list:
    return [list(condition.versions)] if condition and condition.kind == "versions" else []


def _write(sql: str, params: list, bucket_id: str):
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    except IntegrityError as exc:
        raise BucketGone(bucket_id) from exc


def _check_missed(bucket_id: str, key: str, condition: Condition | None) -> None:
    """After a write that wrote nothing: PreconditionFailed if a condition was set, with the
    key's version now (read after, never before: the write decided by itself)."""
    if condition is None:
        return
    current = current_version(bucket_id, key)
    if condition.kind == "absent" and current is None:
        return  # it was absent, but the key quota allows no new key
    raise PreconditionFailed(current)


def why_not_integer(exc: DataError) -> str:
    if getattr(exc.__cause__, "sqlstate", None) == "22003":  # numeric_value_out_of_range
        return "the result would not fit in a 64-bit integer"
    return "the key's value is not an integer, so it cannot be incremented"


def current_version(bucket_id: str, key: str) -> int | None:
    """The live key's version; None if it does not exist."""
    if not _PG:
        return _sqlite_current_version(bucket_id, key)
    with connection.cursor() as cursor:
        cursor.execute(_CURRENT_VERSION_SQL, [bucket_id, key])
        row = cursor.fetchone()
    return None if row is None else row[0]


def get_item(bucket_id: str, key: str) -> tuple[bytes, int] | None:
    """The live key's value and version; None if it does not exist."""
    with connection.cursor() as cursor:
        cursor.execute(_GET_SQL, [bucket_id, key, *_now_params()])
        row = cursor.fetchone()
    return None if row is None else (bytes(row[0]), row[1])


def get_value(bucket_id: str, key: str) -> bytes | None:
    found = get_item(bucket_id, key)
    return None if found is None else found[0]


def delete_key(bucket_id: str, key: str, condition: Condition | None = None) -> bool:
    """Delete a key; True if a live key was deleted (an expired one is removed but not found).

    With a condition "versions" or "exists", only a live key that meets it is deleted, else
    PreconditionFailed; "absent" deletes nothing: PreconditionFailed if the key exists, else
    False (nothing to delete)."""
    if condition is not None and condition.kind == "absent":
        current = current_version(bucket_id, key)
        if current is not None:
            raise PreconditionFailed(current)
        return False
    if not _PG:
        return _sqlite_delete_key(bucket_id, key, condition)
    with connection.cursor() as cursor:
        b = bucket_id  # its lock, the row, then the change's (api.history.logged_delete)
        if condition is None:
            cursor.execute(_DELETE_SQL, [b, b, key, b])
        elif condition.kind == "exists":
            cursor.execute(_DELETE_LIVE_SQL, [b, b, key, b])
        else:
            cursor.execute(_DELETE_IF_SQL, [b, b, key, list(condition.versions), b])
        row = cursor.fetchone()
    if row is None and condition is not None:
        raise PreconditionFailed(current_version(bucket_id, key))
    return bool(row and row[0])


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

    Rows are (key, version), or (key, value, ttl, version) with values: ttl the whole seconds
    the key has left, rounded up, 0 if it never expires."""
    columns = f"{_KEY}, value, {_TTL_LEFT}, version" if with_values else f"{_KEY}, version"
    where, params = _key_range(bucket_id, prefix, after)
    sql = f"SELECT {columns} FROM {_T} WHERE {where} ORDER BY {_KEY} LIMIT %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, limit])
        rows = cursor.fetchall()
    if with_values and not _PG:
        now = timezone.now()
        rows = [
            (key, value, _seconds_left(expires, now), version)
            for key, value, expires, version in rows
        ]
    return rows


def count_live(bucket_id: str, *, prefix: str, after: str | None) -> int:
    """The live keys list_page would page through: the same index range, counted."""
    where, params = _key_range(bucket_id, prefix, after)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {_T} WHERE {where}", params)
        return cursor.fetchone()[0]


def _key_range(bucket_id: str, prefix: str, after: str | None) -> tuple[str, list]:
    """The WHERE of a bucket's live keys under `prefix`, after the key `after` if given."""
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
    return " AND ".join(where), params


def _seconds_left(expires_at: datetime | str | None, now: datetime) -> int:
    if expires_at is None:
        return 0
    return max(1, math.ceil((_aware(expires_at) - now).total_seconds()))


def _aware(expires_at: datetime | str) -> datetime:
    if isinstance(expires_at, str):  # SQLite hands raw SQL its stored text (UTC)...
        parsed = parse_datetime(expires_at)
        assert parsed is not None, expires_at
        expires_at = parsed
    if expires_at.tzinfo is None:  # ... or a naive datetime, in UTC
        expires_at = expires_at.replace(tzinfo=UTC)
    return expires_at


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


# Transactions (api.transactions) run one statement per kind of op of a group, over arrays
# (PostgreSQL): their cost grows with the rows, not with round trips. Versions are drawn as in
# the single writes: by DO UPDATE's SET after the row lock, by the column default for new rows.
_EXPIRES_OF = "{now} + NULLIF({ttl}, 0) * interval '1 second'"
_LOCK_SQL = (
    f"SELECT {_KEY}, CASE WHEN {_LIVE} THEN version END FROM {_T} "
    f"WHERE bucket_id = %s AND {_KEY} = ANY(%s) ORDER BY {_KEY} FOR UPDATE"
)
_GET_MANY_SQL = (
    f"SELECT {_KEY}, value, version FROM {_T} WHERE bucket_id = %s AND {_KEY} = ANY(%s) AND {_LIVE}"
)
_DELETE_MANY_SQL = (
    f"DELETE FROM {_T} WHERE bucket_id = %s AND {_KEY} = ANY(%s) RETURNING {_KEY}, {_LIVE}"
)
# The upserts take their rows in byte order of the keys (ORDER BY u.k COLLATE "C", the order
# of lock_versions too): two transactions writing the same keys queue instead of deadlocking.
# Their arrays go in binary (%b), as an import's do (_IMPORT_SQL): no escaping of each value.
_SET_MANY = {
    True: (
        f"INSERT INTO {_T} AS item (bucket_id, {_KEY}, value, expires_at, updated_at) "
        f"SELECT %s, u.k, u.v, {_EXPIRES_OF.format(now=_NOW, ttl='u.ttl')}, {_NOW} "
        "FROM unnest(%b::text[], %b::bytea[], %b::bigint[]) AS u(k, v, ttl) "
        'ORDER BY u.k COLLATE "C" '
        f"ON CONFLICT (bucket_id, {_KEY}) DO UPDATE SET value = excluded.value, "
        "expires_at = excluded.expires_at, updated_at = excluded.updated_at, "
        f"version = {_NEXT_VERSION} RETURNING {_KEY}, version, expires_at"
    ),
    # The key quota is full: only keys with a row (live or expired) are written.
    False: (
        f"UPDATE {_T} AS item SET value = u.v, "
        f"expires_at = {_EXPIRES_OF.format(now=_NOW, ttl='u.ttl')}, updated_at = {_NOW}, "
        f"version = {_NEXT_VERSION} "
        "FROM unnest(%b::text[], %b::bytea[], %b::bigint[]) AS u(k, v, ttl) "
        f"WHERE item.bucket_id = %s AND item.{_KEY} = u.k "
        f"RETURNING item.{_KEY}, item.version, item.expires_at"
    ),
}
_ADDED = (  # the stored count (0 if expired) plus {delta}; the cast fails on a non-integer
    f"convert_to((CASE WHEN item.expires_at IS NOT NULL AND item.expires_at <= {_NOW} THEN 0 "
    "ELSE convert_from(item.value, 'UTF8')::bigint END + {delta})::text, 'UTF8')"
)
_EXCLUDED_DELTA = "convert_from(excluded.value, 'UTF8')::bigint"  # the new row's value: the delta
_COUNTED = "convert_from(item.value, 'UTF8')::bigint, item.version, item.expires_at"
_INCREMENT_MANY = {
    True: (
        f"INSERT INTO {_T} AS item (bucket_id, {_KEY}, value, expires_at, updated_at) "
        "SELECT %s, u.k, convert_to(u.d::text, 'UTF8'), "
        f"{_EXPIRES_OF.format(now=_NOW, ttl='u.ttl')}, {_NOW} "
        "FROM unnest(%b::text[], %b::bigint[], %b::bigint[]) AS u(k, d, ttl) "
        'ORDER BY u.k COLLATE "C" '
        f"ON CONFLICT (bucket_id, {_KEY}) DO UPDATE SET "
        f"value = {_ADDED.format(delta=_EXCLUDED_DELTA)}, "
        "expires_at = excluded.expires_at, updated_at = excluded.updated_at, "
        f"version = {_NEXT_VERSION} RETURNING item.{_KEY}, {_COUNTED}"
    ),
    False: (
        f"UPDATE {_T} AS item SET value = {_ADDED.format(delta='u.d')}, "
        f"expires_at = {_EXPIRES_OF.format(now=_NOW, ttl='u.ttl')}, updated_at = {_NOW}, "
        f"version = {_NEXT_VERSION} "
        "FROM unnest(%b::text[], %b::bigint[], %b::bigint[]) AS u(k, d, ttl) "
        f"WHERE item.bucket_id = %s AND item.{_KEY} = u.k RETURNING item.{_KEY}, {_COUNTED}"
    ),
}
# Each prefix's live keys, counted up to a cap: one index range scan each, stopped by LIMIT.
_COUNT_MANY_SQL = (
    f"SELECT (SELECT count(*) FROM (SELECT 1 FROM {_T} WHERE bucket_id = %s "
    f"AND {_KEY} >= p.lo AND {_KEY} < p.hi AND {_LIVE} LIMIT %s) AS hit) "
    "FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS p(lo, hi, n) ORDER BY p.n"
)
_COUNT_ONE_SQL = (
    f"SELECT count(*) FROM (SELECT 1 FROM {_T} WHERE bucket_id = %s "
    f"AND {_KEY} >= %s AND {_KEY} < %s AND {_LIVE} LIMIT %s) AS hit"
)
# The range's rows, locked in key order (two transactions deleting overlapping ranges take their
# locks in the same order), then deleted by primary key; at most `limit` of them.
_RANGE_IDS = (
    f"SELECT id FROM {_T} WHERE bucket_id = %s AND {_KEY} >= %s AND {_KEY} < %s "
    "ORDER BY {key} LIMIT %s"
).replace("{key}", _KEY)
# SQLite's DELETEs return the expiry, judged in Python: SQLite 3.40 evaluates "expires_at IS
# NULL" in a DELETE's RETURNING as false for a NULL expiry (seen with the partial index on it).
_DELETE_PREFIX_SQL = (
    f"DELETE FROM {_T} WHERE id = ANY(ARRAY({_RANGE_IDS} FOR UPDATE)) RETURNING {_KEY}, {_LIVE}"
    if _PG
    else f"DELETE FROM {_T} WHERE id IN ({_RANGE_IDS}) RETURNING {_KEY}, expires_at"
)


def prefix_range(prefix: str) -> tuple[str, str]:
    """The keys that start with `prefix` are those with lo <= key < hi."""
    upper = prefix_upper_bound(prefix)
    if upper is None:
        # No string bounds them ("" or only U+10FFFF): the greatest code point, repeated past
        # the longest key, is above every key.
        upper = chr(0x10FFFF) * (settings.THISDB_KEY_MAX_BYTES // 4 + 1)
    return prefix, upper


def lock_versions(bucket_id: str, keys: list[str]) -> dict[str, int]:
    """Lock the rows of `keys` that exist, in key order, and return the live ones' versions
    (PostgreSQL). The fixed order keeps two transactions on the same keys from deadlocking."""
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_SQL, [bucket_id, keys])
        return {key: version for key, version in cursor.fetchall() if version is not None}


def get_many(bucket_id: str, keys: list[str]) -> dict[str, tuple[bytes, int]]:
    """The live keys among `keys`: key -> (value, version) (PostgreSQL)."""
    with connection.cursor() as cursor:
        cursor.execute(_GET_MANY_SQL, [bucket_id, keys])
        return {key: (bytes(value), version) for key, value, version in cursor.fetchall()}


def set_many(
    bucket_id: str,
    keys: list[str],
    values: list[bytes],
    ttls: list[int],
    create: bool,
    changes: list[Changed],
) -> dict[str, int]:
    """Write each key (distinct keys) and return key -> new version (PostgreSQL); each put is
    added to `changes`, for the transaction to record (api.history.record). With create=False
    keys without a row are not written and are missing from the answer."""
    arrays = [keys, values, ttls]
    params = [bucket_id, *arrays] if create else [*arrays, bucket_id]
    value_of = dict(zip(keys, values, strict=True))
    versions = {}
    for key, version, expires_at in _write_many(_SET_MANY[create], params, bucket_id):
        versions[key] = version
        changes.append(Changed(key, value=value_of[key], version=version, expires_at=expires_at))
    return versions


# An import's batch (api.writes.import_items): one upsert of distinct keys in key order (the
# order of the transactions' locks: no deadlock with them), under the bucket's lock taken shared
# as a single write takes it, recorded for watchers in the same statement. A row that was there
# is updated under its row lock and draws a new version after whoever held it: a single write to
# the same key at the same moment lands before or after, each with its own version. A new row's
# xmax is 0 (an updated one carries its updater's): that counts the keys the batch created.
# The three arrays go in binary (%b): psycopg sends a list of bytes as a text array otherwise,
# every value hex-escaped by the client and parsed back by the server, which took 2.9 of the
# 3.3 ms of client CPU a 1,000-line batch's statement cost (0.6 ms in binary; bench/NOTES.md).
_IMPORT_SQL = history.logged_puts(
    f"INSERT INTO {_T} AS item (bucket_id, {_KEY}, value, expires_at, updated_at) "
    f"SELECT %s, u.k, u.v, {_EXPIRES_OF.format(now=_NOW, ttl='u.ttl')}, {_NOW} "
    "FROM locked, unnest(%b::text[], %b::bytea[], %b::bigint[]) AS u(k, v, ttl) "
    'ORDER BY u.k COLLATE "C" '
    f"ON CONFLICT (bucket_id, {_KEY}) DO UPDATE SET value = excluded.value, "
    "expires_at = excluded.expires_at, updated_at = excluded.updated_at, "
    f"version = {_NEXT_VERSION}"
)
_EXISTING_SQL = (
    f"SELECT {_KEY} FROM {_T} WHERE bucket_id = %s AND {_KEY} = ANY(%s)"
    if _PG
    else f"SELECT {_KEY} FROM {_T} WHERE bucket_id = %s "
    f"AND {_KEY} IN (SELECT value FROM json_each(%s))"
)


def import_rows(bucket_id: str, keys: list[str], values: list[bytes], ttls: list[int]) -> int:
    """Write each key (distinct keys; ttl 0: never expires), as set_value does, in one
    statement (SQLite: one transaction), and record them for the bucket's watchers; returns
    how many of them were new keys. BucketGone if the bucket was deleted."""
    if not _PG:
        return _sqlite_import_rows(bucket_id, keys, values, ttls)
    b = bucket_id
    try:
        with connection.cursor() as cursor:
            cursor.execute(_IMPORT_SQL, [b, b, keys, values, ttls, b, b])
            return cursor.fetchone()[0]
    except IntegrityError as exc:
        raise BucketGone(bucket_id) from exc


def existing_keys(bucket_id: str, keys: list[str]) -> set[str]:
    """The keys among `keys` that have a row in the bucket, live or expired (a write of them
    creates no key)."""
    with connection.cursor() as cursor:
        cursor.execute(_EXISTING_SQL, [bucket_id, keys if _PG else json.dumps(keys)])
        return {key for (key,) in cursor.fetchall()}


def increment_many(
    bucket_id: str,
    keys: list[str],
    deltas: list[int],
    ttls: list[int],
    create: bool,
    changes: list[Changed],
) -> dict[str, Counted]:
    """Add each delta to its key (distinct keys), as increment() does, and return key ->
    Counted (PostgreSQL); create=False as for set_many. NotAnInteger if any of them fails,
    which aborts the statement: the caller rolls back to a savepoint to learn which."""
    arrays = [keys, deltas, ttls]
    params = [bucket_id, *arrays] if create else [*arrays, bucket_id]
    try:
        rows = _write_many(_INCREMENT_MANY[create], params, bucket_id)
    except DataError as exc:
        raise NotAnInteger(why_not_integer(exc)) from exc
    for key, value, version, expires_at in rows:
        put = Changed(key, value=str(value).encode(), version=version, expires_at=expires_at)
        changes.append(put)
    return {key: Counted(value, version) for key, value, version, _ in rows}


def _write_many(sql: str, params: list, bucket_id: str) -> list[tuple]:
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    except IntegrityError as exc:
        raise BucketGone(bucket_id) from exc


def delete_many(bucket_id: str, keys: list[str], changes: list[Changed]) -> set[str]:
    """Delete the keys; return those that were live (PostgreSQL). Each row removed is added to
    `changes` (an expired one as its expiry)."""
    with connection.cursor() as cursor:
        cursor.execute(_DELETE_MANY_SQL, [bucket_id, keys])
        rows = cursor.fetchall()
    changes.extend(_deletes(rows))
    return {key for key, live in rows if live}


def _deletes(rows: list[tuple[str, bool]]) -> list[Changed]:
    """The changes of removed rows (key, live): a live one deleted, an expired one expired."""
    return [
        Changed(key, deleted=True, reason="deleted" if live else "expired") for key, live in rows
    ]


@contextmanager
def _walking_the_index(cursor) -> Iterator[None]:
    """PostgreSQL plans a key range whose bounds it cannot see (an array's elements, a generic
    plan's parameters) as a bitmap scan, which reads every index entry of the range before a
    LIMIT can stop it: 510 ms for a count of a 1,000,000-key bucket capped at 10,001, against
    2 ms for an index scan that stops at the cap. Bitmap scans off for the rest of this
    transaction (SET LOCAL; a transaction of its own outside one): the range is walked."""
    if connection.in_atomic_block:
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        yield
        return
    with transaction.atomic():
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        yield


def count_prefixes(bucket_id: str, prefixes: list[str], cap: int) -> list[int]:
    """Live keys starting with each prefix, each counted up to `cap` (then `cap` + 1)."""
    ranges = [prefix_range(prefix) for prefix in prefixes]
    with connection.cursor() as cursor:
        if _PG:
            lows, highs = [lo for lo, _ in ranges], [hi for _, hi in ranges]
            with _walking_the_index(cursor):
                cursor.execute(_COUNT_MANY_SQL, [bucket_id, cap + 1, lows, highs])
                return [row[0] for row in cursor.fetchall()]
        counts = []
        for lo, hi in ranges:
            cursor.execute(_COUNT_ONE_SQL, [bucket_id, lo, hi, *_now_params(), cap + 1])
            counts.append(cursor.fetchone()[0])
        return counts


def delete_prefix(
    bucket_id: str, prefix: str, limit: int, changes: list[Changed]
) -> tuple[int, int]:
    """Delete up to `limit` keys starting with `prefix`, expired ones included; return (live
    keys deleted, rows deleted). Rows deleted == limit means there may be more. The removed
    rows are added to `changes` in key order (PostgreSQL: the transaction records them) or
    recorded at once (SQLite, whose transactions record op by op)."""
    lo, hi = prefix_range(prefix)
    with connection.cursor() as cursor:
        if _PG:
            with _walking_the_index(cursor):
                cursor.execute(_DELETE_PREFIX_SQL, [bucket_id, lo, hi, limit])
                rows = cursor.fetchall()
        else:
            cursor.execute(_DELETE_PREFIX_SQL, [bucket_id, lo, hi, limit])
            rows = cursor.fetchall()
    if not _PG:
        rows = [(key, not _expired(expires_at)) for key, expires_at in rows]
    removed = _deletes(sorted(rows))
    if _PG:
        changes.extend(removed)
    else:
        history.record(bucket_id, removed)
    return sum(1 for _, live in rows if live), len(rows)


SWEEP_BATCH = 2000  # rows a statement: about 10 ms alone, under 100 ms beside a full API load
# After each batch the sweep rests as long as the batch took: it takes at most half of one
# core, and the API's requests meet its locks and its CPU half the time (budget: GET's p99
# within 2x of without; still over 50,000 rows/s).
SWEEP_REST = 1.0


def sweep_expired_items(now: datetime, batch: int = SWEEP_BATCH, rest: float = SWEEP_REST) -> int:
    """Delete keys that expired before `now`, `batch` rows a transaction; return how many.

    Live keys are never touched: both the batch and the DELETE test expires_at. Each batch is a
    transaction: read the batch, take its buckets' locks (api.history.bucket_lock: the writers
    of those buckets wait the few ms the batch takes, and a key refreshed meanwhile no longer
    matches), delete, and record each removed key as expired in its bucket's history.

    The batch is read in expires_at order, from the item_expires_at index. Without the order,
    PostgreSQL reads it with a sequential scan when most rows have expired, and the last
    statement (the one that finds fewer than `batch` rows) then reads the whole table: 80 to
    440 ms for a sweep of 1,000,000 keys, against 6 to 11 ms for any statement in index order.
    """
    total = 0
    while True:
        started = time.monotonic()
        deleted = _sweep_batch(now, batch)
        total += deleted
        if deleted < batch:
            return total
        time.sleep((time.monotonic() - started) * rest)


_SWEEP_BATCH_SQL = (
    f"SELECT id, bucket_id FROM {_T} WHERE expires_at <= %s ORDER BY expires_at LIMIT %s"
)
# The batch as an array: the DELETE finds its rows by primary key whatever the planner thinks of
# the table (an IN (...) was planned as a hash join over a full scan).
_SWEEP_SQL = (
    f"DELETE FROM {_T} WHERE id = ANY(%s) AND expires_at <= %s RETURNING bucket_id, {_KEY}"
    if _PG
    else f"DELETE FROM {_T} WHERE id IN (SELECT value FROM json_each(%s)) AND expires_at <= %s "
    f"RETURNING bucket_id, {_KEY}"
)


def _sweep_batch(now: datetime, batch: int) -> int:
    """One batch of the sweep, its expiries recorded; returns the keys removed."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_SWEEP_BATCH_SQL, [_dt(now), batch])
        found = cursor.fetchall()
        if not found:
            return 0
        ids = [row_id for row_id, _ in found]
        with history.bucket_lock([bucket_id for _, bucket_id in found]):
            cursor.execute(_SWEEP_SQL, [ids if _PG else json.dumps(ids), _dt(now)])
            removed: dict[str, list[Changed]] = {}
            for bucket_id, key in sorted(cursor.fetchall()):
                removed.setdefault(bucket_id, []).append(
                    Changed(key, deleted=True, reason="expired")
                )
            for bucket_id, changes in removed.items():
                history.record(bucket_id, changes)
    notify.expired(sorted(removed))
    return sum(len(changes) for changes in removed.values())


def sweep_expired_tokens(now: datetime) -> int:
    """Delete tokens that expired before `now` (one DELETE; nothing refers to tokens)."""
    deleted, _ = Token.objects.filter(expires_at__lte=now).delete()
    return deleted


# The embedded SQLite default: one process, no sequences, no statement_timestamp(). Its writes
# read, check and write under a lock in one transaction, and draw versions from a one-row table
# (api migration 0003), so they keep every rule the PostgreSQL statements keep.
# Reentrant: a transaction (api.transactions) holds it across its ops, each of which takes it too.
_sqlite_write_lock = threading.RLock()
_SQLITE_CLOCK = "api_version_clock"


def embedded_write_lock() -> threading.RLock:
    """The SQLite writes' lock, for a caller that runs several of them as one (transactions)."""
    return _sqlite_write_lock


def _sqlite_store(cursor, bucket_id, key, value, ttl, now, version) -> None:
    try:
        cursor.execute(
            f"INSERT INTO {_T} (bucket_id, {_KEY}, value, expires_at, updated_at, version) "
            "VALUES (%s, %s, %s, %s, %s, %s) "
            f"ON CONFLICT (bucket_id, {_KEY}) DO UPDATE SET value = excluded.value, "
            "expires_at = excluded.expires_at, updated_at = excluded.updated_at, "
            "version = excluded.version",
            [bucket_id, key, value, _dt(expiry(now, ttl)), _dt(now), version],
        )
    except IntegrityError as exc:
        raise BucketGone(bucket_id) from exc
    put = Changed(key, value=bytes(value), version=version, expires_at=expiry(now, ttl))
    history.record(bucket_id, [put])


def _sqlite_set_value(bucket_id, key, value, ttl, create, condition) -> int | None:
    with _sqlite_write_lock, transaction.atomic(), connection.cursor() as cursor:
        version = _sqlite_claim(cursor, bucket_id, key, create, condition)
        if version is None:
            return None
        _sqlite_store(cursor, bucket_id, key, value, ttl, timezone.now(), version)
        return version


def _sqlite_import_rows(bucket_id, keys, values, ttls) -> int:
    created = 0
    with _sqlite_write_lock, transaction.atomic(), connection.cursor() as cursor:
        now = timezone.now()
        for key, value, ttl in zip(keys, values, ttls, strict=True):
            cursor.execute(
                f"SELECT 1 FROM {_T} WHERE bucket_id = %s AND {_KEY} = %s", [bucket_id, key]
            )
            created += cursor.fetchone() is None
            cursor.execute(f"UPDATE {_SQLITE_CLOCK} SET last = last + 1 RETURNING last")
            _sqlite_store(cursor, bucket_id, key, value, ttl, now, cursor.fetchone()[0])
    return created


def _sqlite_increment(bucket_id, key, delta, ttl, create, condition) -> Counted | None:
    with _sqlite_write_lock, transaction.atomic(), connection.cursor() as cursor:
        current = get_value(bucket_id, key)
        number = 0 if current is None else parse_integer(current)
        if number is None:
            raise NotAnInteger("the key's value is not an integer, so it cannot be incremented")
        result = number + delta
        if not INT64_MIN <= result <= INT64_MAX:
            raise NotAnInteger("the result would not fit in a 64-bit integer")
        version = _sqlite_claim(cursor, bucket_id, key, create, condition)
        if version is None:
            return None
        _sqlite_store(cursor, bucket_id, key, str(result).encode(), ttl, timezone.now(), version)
        return Counted(result, version)


def _sqlite_claim(cursor, bucket_id, key, create, condition) -> int | None:
    """Check the key against the condition and draw its next version; None: no row to write
    and create=False."""
    cursor.execute(
        f"SELECT version, expires_at FROM {_T} WHERE bucket_id = %s AND {_KEY} = %s",
        [bucket_id, key],
    )
    row = cursor.fetchone()
    live = None if row is None or _expired(row[1]) else row[0]
    if condition is not None and not condition.holds(live):
        raise PreconditionFailed(live)
    if row is None and not create:
        return None
    if condition is not None and condition.kind == "absent" and not create:
        return None  # only a new key would do, and the key quota allows none
    cursor.execute(f"UPDATE {_SQLITE_CLOCK} SET last = last + 1 RETURNING last")
    return cursor.fetchone()[0]


def _expired(expires_at) -> bool:
    return expires_at is not None and _aware(expires_at) <= timezone.now()


def _sqlite_current_version(bucket_id: str, key: str) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT version FROM {_T} WHERE bucket_id = %s AND {_KEY} = %s AND {_LIVE}",
            [bucket_id, key, _dt(timezone.now())],
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


_SQLITE_DELETE_SQL = f"DELETE FROM {_T} WHERE bucket_id = %s AND {_KEY} = %s RETURNING expires_at"


def _sqlite_delete_key(bucket_id: str, key: str, condition: Condition | None) -> bool:
    with _sqlite_write_lock, transaction.atomic(), connection.cursor() as cursor:
        if condition is not None:
            live = _sqlite_current_version(bucket_id, key)
            if not condition.holds(live):
                raise PreconditionFailed(live)
        cursor.execute(_SQLITE_DELETE_SQL, [bucket_id, key])
        row = cursor.fetchone()
        if row is not None:
            history.record(bucket_id, _deletes([(key, not _expired(row[0]))]))
    return row is not None and not _expired(row[0])
