"""Is each part of the platform up? PostgreSQL, Redis, the Celery worker and beat, as the staff
overview shows them. Every probe is bounded in time and answers, never raises. A part the
embedded default runs without (no REDIS_URL: in-process limits, the filesystem broker) is "not
configured", never "up": nothing there can be up for the whole platform."""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from console.models import TaskHeartbeat

# PostgreSQL and Redis are probed by the site (its /readyz and /metrics ask them too).
from thisdb_site.probes import Check, database, redis  # noqa: F401

PING_TIMEOUT_SECONDS = 0.5  # the overview waits at most this for workers to answer a ping
# Beat sends a task every minute; a worker that has not finished one for 3 minutes is suspect.
STALE_AFTER = timedelta(minutes=3)


def _latest(event: str) -> tuple[datetime | None, list[TaskHeartbeat]]:
    beats = list(TaskHeartbeat.objects.filter(event=event).order_by("task"))
    return max((b.at for b in beats), default=None), beats


def celery(now: datetime | None = None) -> list[Check]:
    """The worker (tasks finished lately, and who answers a ping) and beat (tasks sent lately)."""
    now = now or timezone.now()
    checks = []
    finished, _ = _latest(TaskHeartbeat.FINISHED)
    sent, _ = _latest(TaskHeartbeat.SENT)
    worker_ok = finished is not None and now - finished < STALE_AFTER
    detail = f"last finished a task {_ago(now, finished)}"
    if _filesystem_broker():
        # No broker of its own: tasks queue in files on this machine (the embedded default).
        detail = f"no REDIS_URL: kombu's filesystem broker (one machine only); {detail}"
        checks.append(Check("celery worker", True, detail, configured=False))
    else:
        answering = _ping_workers()
        detail += f"; {answering} worker{'s' if answering != 1 else ''} answered a ping"
        checks.append(Check("celery worker", worker_ok or answering > 0, detail))
    beat_ok = sent is not None and now - sent < STALE_AFTER
    checks.append(Check("celery beat", beat_ok, f"last sent a task {_ago(now, sent)}"))
    return checks


def _filesystem_broker() -> bool:
    return settings.CELERY_BROKER_URL.startswith("filesystem:")


def _ping_workers() -> int:
    """How many workers answer a broadcast ping (the filesystem broker cannot broadcast)."""
    from thisdb_site.celery import app

    try:
        return len(app.control.ping(timeout=PING_TIMEOUT_SECONDS) or [])
    except Exception:
        return 0


def _ago(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "never"
    seconds = int((now - then).total_seconds())
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def task_table() -> list[dict]:
    """Each periodic task with when beat last sent it and a worker last finished it."""
    rows: dict[str, dict] = {}
    for heartbeat in TaskHeartbeat.objects.all():
        rows.setdefault(heartbeat.task, {"task": heartbeat.task})[heartbeat.event] = heartbeat.at
    return [rows[name] for name in sorted(rows)]
