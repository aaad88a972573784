from django.db import models


class TaskHeartbeat(models.Model):
    """When beat last sent, and a worker last finished, each periodic task: the staff overview's
    view of the background work (thisdb_site.celery records them)."""

    SENT, FINISHED = "sent", "finished"

    task = models.CharField(max_length=200)
    event = models.CharField(max_length=10, choices=[(SENT, "sent by beat"), (FINISHED, "run")])
    at = models.DateTimeField()

    class Meta:
        # The table it had when it was dashboard's: moving the model kept its rows.
        db_table = "dashboard_taskheartbeat"
        constraints = [
            models.UniqueConstraint(fields=["task", "event"], name="heartbeat_task_event"),
        ]

    def __str__(self) -> str:
        return f"{self.task} {self.event} at {self.at:%Y-%m-%d %H:%M:%S}"


def beat(task: str, event: str) -> None:
    """Record that `task` was just sent or finished: one upsert, so it never grows."""
    from django.utils import timezone

    TaskHeartbeat.objects.bulk_create(
        [TaskHeartbeat(task=task, event=event, at=timezone.now())],
        update_conflicts=True,
        unique_fields=["task", "event"],
        update_fields=["at"],
    )
