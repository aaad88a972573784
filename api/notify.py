"""Telling watchers that something changed: after a write commits, a bucket delete, a revoked key.

A notice only wakes the watch hubs (api.watchhub, one in each web process): a hub then reads the
bucket's history (api.history), which alone says what changed and in what order. A lost notice
therefore loses nothing; the hub's slower reads find the change within
THISDB_WATCH_POLL_SECONDS.

With Redis, notices go over one pub/sub channel that every hub listens to, so a write on one web
node wakes the watchers on all of them; on a Redis Cluster, a sharded channel (SPUBLISH and
SSUBSCRIBE on the master of its slot, api.redis_clients). A write publishes only if some hub
watches its bucket: the hubs say which buckets they watch on the same channel (and again every
ANNOUNCE_EVERY_SECONDS), and each process keeps what it heard in `watched`, so a write to a
bucket nobody watches costs no Redis command at all. Without Redis (the embedded default, one
process), notices go straight to this process's hub.
"""

import json
import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings

from api import limits

log = logging.getLogger(__name__)

ANNOUNCE_EVERY_SECONDS = 10  # a hub says again which buckets it watches
WATCHED_FOR_SECONDS = 35  # a bucket counts as watched this long after it was last announced

# Buckets some hub watches -> until when (time.monotonic()), from the hubs' announcements.
watched: dict[str, float] = {}
# This process's hub, if it runs one: called with each notice (thread-safe, never blocks).
local_hub: Callable[[dict], None] | None = None
_lock = threading.Lock()


def channel() -> str:
    return f"{settings.THISDB_REDIS_PREFIX}:watch"


def changed(bucket_id: str) -> None:
    """After a write to the bucket committed."""
    _tell({"changed": bucket_id}, only_if_watched=bucket_id)


def expired(bucket_ids: list[str]) -> None:
    """After the sweep removed expired keys of these buckets (from a worker, which hears no
    announcements: always published)."""
    for bucket_id in bucket_ids:
        _tell({"changed": bucket_id})


def bucket_deleted(bucket_id: str) -> None:
    """After the bucket was deleted: its streams end (event: cancel)."""
    _tell({"deleted": bucket_id})


def blocked(marker: str) -> None:
    """After a key or token was revoked or an account suspended (`marker`, api.limits.block_key):
    the streams opened with it end."""
    _tell({"blocked": marker})


def announce(bucket_ids: list[str], ask: bool = False) -> dict:
    """The notice a hub publishes to say it watches these buckets; with `ask` (a hub that just
    subscribed), the other hubs answer with theirs."""
    return {"watching": bucket_ids, "ask": True} if ask else {"watching": bucket_ids}


def heard(notice: dict) -> None:
    """A hub heard `notice` on the channel: remember the buckets it announces."""
    buckets = notice.get("watching")
    if buckets:
        until = time.monotonic() + WATCHED_FOR_SECONDS
        for bucket_id in buckets:
            watched[bucket_id] = until


def _tell(notice: dict, only_if_watched: str | None = None) -> None:
    hub = local_hub
    if hub is not None:
        hub(notice)
    if not settings.REDIS_URL:
        return
    if only_if_watched is not None and watched.get(only_if_watched, 0.0) < time.monotonic():
        return
    limits.publish(channel(), json.dumps(notice))
