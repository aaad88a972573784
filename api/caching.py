"""A worker's short memory of lookups: API keys, tokens and buckets, kept
THISDB_AUTH_CACHE_SECONDS so a request need not ask the database again.

A plain dict of key -> (expires, value): a read is one dict lookup and a clock read, atomic
under the GIL, so the hot path takes no lock. Bounded: past MAX_ENTRIES it starts over.
"""

import time
from collections.abc import Callable, Hashable
from typing import Any

from django.conf import settings

MAX_ENTRIES = 100_000  # budget: about 30 MB of lookups per worker


class ShortCache(dict):
    def live(self, key: Hashable) -> Any:
        """The value kept under `key` if it has not expired, else None."""
        entry = dict.get(self, key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        return None

    def keep(self, key: Hashable, value: Any) -> None:
        if len(self) >= MAX_ENTRIES:
            self.clear()
        self[key] = (time.monotonic() + settings.THISDB_AUTH_CACHE_SECONDS, value)

    def drop_where(self, test: Callable[[Any], bool]) -> None:
        """Forget every value for which `test` is true (revocations: rare, so a scan)."""
        for key, (_, value) in list(self.items()):
            if test(value):
                self.pop(key, None)
