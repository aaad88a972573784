"""Does PostgreSQL answer, does Redis? Each probe is bounded in time and answers, never raises:
what /readyz, /metrics and the staff overview (console.health) show. A part the embedded default
runs without (no REDIS_URL: in-process limits) is "not configured", never "up"."""

import time
from dataclasses import dataclass
from typing import cast

from django.conf import settings
from django.db import connection

from api import limits


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
