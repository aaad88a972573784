"""Functions that record a single write's change in its bucket's history (api.history), on
PostgreSQL: the next position of a watched bucket, and the change at it.

A statement sees only what committed before it began, yet a single write takes its bucket's lock
inside its statement. A write whose statement began while a watch was starting on the bucket
(start_watching, which holds the lock exclusive) waits for that lock, then commits after the
watch's first position: read in the statement's own view, the bucket still looked unwatched, so
the write recorded nothing and the new watch never heard of it. A function's query sees what
committed before the query ran: called after the lock was taken, it finds the watch.

A bucket nobody watches has no watched head row: the functions then record nothing, and a write
pays one index probe for its history, where an INSERT in its own statement cost PostgreSQL more
(about 10 µs a write) to prepare even when it inserted no row.
"""

from django.db import migrations

CREATE = [
    # n positions (an import's batch): the last of them, or NULL when the bucket is not watched.
    """
CREATE FUNCTION api_take_positions(bucket text, n bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    last bigint;
BEGIN
    UPDATE api_changehead SET position = position + n
    WHERE bucket_id = bucket AND watched_until > statement_timestamp()
    RETURNING position INTO last;
    RETURN last;
END
$$
""",
    # A single write's change: a put (a set's or an increment's: its value, version and expiry)
    # or a delete (deleted: a new version, and its reason). Its position, or NULL when the
    # bucket is not watched (nothing recorded).
    """
CREATE FUNCTION api_record_change(bucket text, deleted boolean, k text, v bytea, ver bigint,
                                  expires timestamptz, why text) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    p bigint;
BEGIN
    UPDATE api_changehead SET position = position + 1
    WHERE bucket_id = bucket AND watched_until > statement_timestamp()
    RETURNING position INTO p;
    IF p IS NOT NULL THEN
        INSERT INTO api_change (bucket_id, position, deleted, key, value, version, expires_at,
                                reason, at)
        VALUES (bucket, p, deleted, k, v, COALESCE(ver, nextval('api_item_version')), expires,
                why, statement_timestamp());
    END IF;
    RETURN p;
END
$$
""",
]
DROP = [
    "DROP FUNCTION IF EXISTS "
    "api_record_change(text, boolean, text, bytea, bigint, timestamptz, text)",
    "DROP FUNCTION IF EXISTS api_take_positions(text, bigint)",
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in CREATE:
            schema_editor.execute(sql)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in DROP:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0005_transaction_lock"),
    ]

    operations = [migrations.RunPython(create, drop)]
