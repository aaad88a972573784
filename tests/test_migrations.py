"""The task heartbeats moved from dashboard to console: a database migrated before the move keeps
its rows, now read through console's model (the same table, only Django's record changes)."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from console.models import TaskHeartbeat

BEFORE_THE_MOVE = [("dashboard", "0001_task_heartbeat"), ("console", None)]


@pytest.mark.django_db
def test_heartbeats_recorded_before_the_move_are_kept():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE_THE_MOVE)
    old_model = executor.loader.project_state(BEFORE_THE_MOVE[0]).apps.get_model(
        "dashboard", "TaskHeartbeat"
    )
    sent_at = timezone.now()
    old_model.objects.create(task="api.tasks.roll_up_usage", event="sent", at=sent_at)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert TaskHeartbeat._meta.db_table == old_model._meta.db_table
    kept = TaskHeartbeat.objects.get(task="api.tasks.roll_up_usage")
    assert (kept.event, kept.at) == (TaskHeartbeat.SENT, sent_at)
