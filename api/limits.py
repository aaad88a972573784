"""Rate limits decided in Redis: one write per second per key (spec).

A write sets a marker with `SET NX PX`: the first write in the window creates it and passes, any
other write while it lives is refused. One atomic command, so two racing writes cannot both pass.
Without REDIS_URL an in-process table does the same for the single-process embedded default.
If Redis is unreachable the API keeps serving from the database with limits off (logged at most
once a minute) and picks them up again as soon as Redis answers.
"""

import hashlib
import logging
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings

log = logging.getLogger(__name__)

REDIS_TIMEOUT_SECONDS = 0.25  # a slow Redis may add at most this to a request
WARN_EVERY_SECONDS = 60


@dataclass(frozen=True)
class WriteDecision:
    allowed: bool
    retry_after: int = 0  # whole seconds (the Retry-After header)


def _marker(bucket_id: str, key: str) -> str:
    # Bucket ids are unique across tenants, so markers of two accounts never collide; the key is
    # hashed to bound the Redis key's length (keys may be 512 bytes).
    digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    return f"{settings.THISDB_REDIS_PREFIX}:w:{bucket_id}:{digest}"


def _window_ms() -> int | None:
    per_second = settings.THISDB_KEY_WRITES_PER_SECOND
    if per_second <= 0:
        return None  # limit off
    return max(1, 1000 // per_second)


class _RedisLimiter:
    def __init__(self, url: str):
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        self._last_warning = 0.0

    def claim(self, marker: str, window_ms: int) -> bool | None:
        """True if this write may go ahead; None if Redis could not be asked."""
        try:
            return bool(self.client.set(marker, b"1", nx=True, px=window_ms))
        except redis.RedisError as exc:
            now = time.monotonic()
            if now - self._last_warning >= WARN_EVERY_SECONDS:
                self._last_warning = now
                log.warning("Redis unreachable, rate limits are not enforced: %s", exc)
            return None


class _MemoryLimiter:
    MAX_MARKERS = 100_000  # budget: ~10 MB; expired markers are purged past it

    def __init__(self):
        self.lock = threading.Lock()
        self.markers: dict[str, float] = {}

    def claim(self, marker: str, window_ms: int) -> bool:
        now = time.monotonic()
        with self.lock:
            if self.markers.get(marker, 0.0) > now:
                return False
            if len(self.markers) >= self.MAX_MARKERS:
                self.markers = {m: t for m, t in self.markers.items() if t > now}
            self.markers[marker] = now + window_ms / 1000
            return True


_limiter = None
_limiter_lock = threading.Lock()


def limiter():
    global _limiter
    if _limiter is None:
        with _limiter_lock:
            if _limiter is None:
                url = settings.REDIS_URL
                _limiter = _RedisLimiter(url) if url else _MemoryLimiter()
    return _limiter


def reset() -> None:
    """Forget the limiter, so the next call builds one from the current settings (tests)."""
    global _limiter
    _limiter = None


def claim_write(bucket_id: str, key: str) -> WriteDecision:
    window_ms = _window_ms()
    if window_ms is None:
        return WriteDecision(True)
    allowed = limiter().claim(_marker(bucket_id, key), window_ms)
    if allowed is False:
        return WriteDecision(False, retry_after=max(1, -(-window_ms // 1000)))
    return WriteDecision(True)
