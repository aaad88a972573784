"""Each bucket's history of changes, for watchers (api.history).

Besides the models: an index on the time each change was written, for the sweep (a BRIN index
on PostgreSQL: the table only grows at its end, so a block range index costs the writers almost
nothing; a plain one on the embedded SQLite).
"""

import api.models
from django.db import migrations, models


def create_sweep_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE INDEX change_at ON api_change USING brin (at)")
    else:
        schema_editor.execute("CREATE INDEX change_at ON api_change (at)")


def drop_sweep_index(apps, schema_editor):
    schema_editor.execute("DROP INDEX IF EXISTS change_at")


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0003_item_version"),
    ]

    operations = [
        migrations.CreateModel(
            name="ChangeHead",
            fields=[
                ("bucket_id", models.CharField(max_length=20, primary_key=True, serialize=False)),
                ("position", models.BigIntegerField(default=0)),
                ("watched_until", models.DateTimeField(null=True)),
            ],
        ),
        migrations.CreateModel(
            name="Change",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "bucket_id",
                        "position",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("bucket_id", models.CharField(max_length=20)),
                ("position", models.BigIntegerField()),
                ("deleted", models.BooleanField(default=False)),
                ("key", api.models.ByteOrderTextField()),
                ("value", models.BinaryField(null=True)),
                ("version", models.BigIntegerField()),
                ("expires_at", models.DateTimeField(null=True)),
                ("reason", models.CharField(blank=True, default="", max_length=16)),
                ("at", models.DateTimeField()),
            ],
        ),
        migrations.RunPython(create_sweep_index, drop_sweep_index),
    ]
