"""Is each part of the platform up? PostgreSQL, Redis, the Celery worker and beat, as the staff
overview shows them. Every probe is bounded in time and answers, never raises. A part the
embedded default runs without (no REDIS_URL: in-process limits, the filesystem broker) is "not
configured", never "up": nothing there can be up for the whole platform."""

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from django.conf import settings
from django.db import connection
from django.utils import timezone

from api import limits
from console.models import TaskHeartbeat

PING_TIMEOUT_SECONDS = 0.5  # the overview waits at most this for workers to answer a ping
# Beat sends a task every minute; a worker that has not finished one for 3 minutes is suspect.
STALE_AFTER = timedelta(minutes=3)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool  # nothing to worry about (a part that is not configured is not a failure)
    detail: str
    latency_ms: float | None = None
    configured: bool = True

    @property
    def state(self) -> str:
        if not self.configured:
            return "not configured"
        return "up" if self.ok else "down"


def _timed(probe) -> tuple[object, float]:
    start = time.perf_counter()
    result = probe()
    return result, (time.perf_counter() - start) * 1000


def database() -> Check:
    try:
        with connection.cursor() as cursor:
            _, ms = _timed(lambda: cursor.execute("SELECT 1"))
        return Check("database", True, connection.vendor, ms)
    except Exception as error:  # any failure is the answer, not a 500
        return Check("database", False, f"{type(error).__name__}: {error}")


def redis() -> Check:
    if not settings.REDIS_URL:
        detail = "no REDIS_URL: in-process limits (one process only)"
        return Check("redis", True, detail, configured=False)
    limiter = cast(limits.RedisLimiter, limits.limiter())  # REDIS_URL is set
    try:
        # On a cluster a node of its choice answers, once a node has told the client of them
        # all (limiter.client); a failed master's slots are its replica's within seconds.
        _, ms = _timed(lambda: limiter.client.ping())
        detail = "PING answered" + (" (Redis Cluster)" if settings.REDIS_CLUSTER else "")
        return Check("redis", True, detail, ms)
    except Exception as error:
        return Check("redis", False, f"{type(error).__name__}: {error}")


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
