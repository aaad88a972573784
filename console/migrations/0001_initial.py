# TaskHeartbeat moves here from dashboard: the same table (dashboard_taskheartbeat) and its rows,
# so only Django's record of which app holds the model changes; the database is not touched.

from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('dashboard', '0001_task_heartbeat'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='TaskHeartbeat',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('task', models.CharField(max_length=200)),
                        ('event', models.CharField(choices=[('sent', 'sent by beat'), ('finished', 'run')], max_length=10)),
                        ('at', models.DateTimeField()),
                    ],
                    options={
                        'db_table': 'dashboard_taskheartbeat',
                        'constraints': [models.UniqueConstraint(fields=('task', 'event'), name='heartbeat_task_event')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
