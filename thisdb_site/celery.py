"""The Celery app: the worker runs the tasks that beat schedules (see CELERY_BEAT_SCHEDULE).

Beat records when it sends each task and the worker when it finishes one (console's
TaskHeartbeat), so the staff overview shows whether both are alive.
"""

import logging
import os
from typing import TypedDict

from celery import Celery
from celery.signals import before_task_publish, task_postrun, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "thisdb_site.settings")

# A JSON line per task run, and the worker's and beat's lines as JSON, with THISDB_LOG_FORMAT=json
# (its signal handlers connect as it is imported).
from thisdb_site import requestlog  # noqa: E402, F401

app = Celery("thisdb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

log = logging.getLogger(__name__)


class TaskOptions(TypedDict):
    acks_late: bool
    soft_time_limit: int
    time_limit: int


# Every periodic task's: acknowledged once done, as each is idempotent and a run a worker's crash
# cut short may run again; stopped within beat's minute (55 s; the soft limit lets it end cleanly).
TASK_OPTIONS: TaskOptions = {"acks_late": True, "soft_time_limit": 50, "time_limit": 55}


def _record(task: str, event: str) -> None:
    # A heartbeat must never break the task it records: log and go on.
    try:
        import django
        from django.apps import apps

        if not apps.ready:
            django.setup()  # beat does not set Django up by itself
        from console.models import beat

        beat(task, event)
    except Exception:
        log.exception("could not record that %s was %s", task, event)


@before_task_publish.connect
def _sent(sender=None, **kwargs):
    _record(sender, "sent")


@task_postrun.connect
def _finished(task=None, **kwargs):
    if task is not None:
        _record(task.name, "finished")


@worker_init.connect
def _measure(**kwargs):
    """With THISDB_METRICS_TOKEN, count and time this worker's task runs and serve them at
    THISDB_WORKER_METRICS_ADDRESS (thisdb_site.metrics); in the worker's main process, before
    its pool's processes start, so that each of them counts too."""
    from django.conf import settings

    if settings.THISDB_METRICS_TOKEN:
        from thisdb_site import metrics

        metrics.watch_tasks()
        metrics.serve_worker_metrics(settings.THISDB_WORKER_METRICS_ADDRESS)
