"""Every key gets a version, drawn from one sequence (api.models.NextVersion).

On PostgreSQL the column is added with the sequence's nextval as its default, so every existing
row gets a number of its own (the table is rewritten once). SQLite has no sequences: a one-row
table holds the last version drawn there.
"""

from django.db import migrations, models

import api.models

SQLITE_CLOCK = "api_version_clock"


def create_version_source(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"CREATE SEQUENCE IF NOT EXISTS {api.models.VERSION_SEQUENCE}")
    else:
        schema_editor.execute(f"CREATE TABLE IF NOT EXISTS {SQLITE_CLOCK} (last integer NOT NULL)")
        schema_editor.execute(f"INSERT INTO {SQLITE_CLOCK} (last) VALUES (0)")


def drop_version_source(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP SEQUENCE IF EXISTS {api.models.VERSION_SEQUENCE}")
    else:
        schema_editor.execute(f"DROP TABLE IF EXISTS {SQLITE_CLOCK}")


def own_sequence(apps, schema_editor):
    # The sequence goes with the column, should the column ever be dropped.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"ALTER SEQUENCE {api.models.VERSION_SEQUENCE} OWNED BY api_item.version"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0002_bucket_label"),
    ]

    operations = [
        migrations.RunPython(create_version_source, drop_version_source),
        migrations.AddField(
            model_name="item",
            name="version",
            field=models.BigIntegerField(db_default=api.models.NextVersion()),
        ),
        migrations.RunPython(own_sequence, migrations.RunPython.noop),
    ]
