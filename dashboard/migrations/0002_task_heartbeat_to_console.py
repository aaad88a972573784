# TaskHeartbeat is console's now (console 0001 takes it over): dashboard forgets the model and
# leaves its table, with its rows, to console.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('dashboard', '0001_task_heartbeat'),
        ('console', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='TaskHeartbeat')],
            database_operations=[],
        ),
    ]
