"""A function that takes a transaction's bucket lock and says whether the bucket is watched
(api.history.transaction_lock), on PostgreSQL.

It takes the lock shared first, then asks whether the bucket is watched: a function's query sees
what committed before it ran, after the lock was taken (one statement alone sees only what
committed before it began). A watch that starts takes the lock exclusive (start_watching), so
while the lock is held shared the answer "not watched" stays true, and the transaction can skip
recording its changes. When the bucket is watched, it takes the lock exclusive instead.
"""

from django.db import migrations

LOCK_CLASS = 0x74646268  # api.history.LOCK_CLASS, as the function was made

CREATE = f"""
CREATE FUNCTION api_transaction_lock(bucket text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_lock_shared({LOCK_CLASS}, hashtext(bucket));
    IF EXISTS (SELECT FROM api_changehead
               WHERE bucket_id = bucket AND watched_until > clock_timestamp()) THEN
        PERFORM pg_advisory_unlock_shared({LOCK_CLASS}, hashtext(bucket));
        PERFORM pg_advisory_lock({LOCK_CLASS}, hashtext(bucket));
        RETURN true;
    END IF;
    RETURN false;
END
$$
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS api_transaction_lock(text)")


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0004_change_history"),
    ]

    operations = [migrations.RunPython(create, drop)]
