"""Which database a query goes to when DATABASE_REPLICA_URL is set.

Everything reads and writes on the primary ("default"), the API above all: it promises
read-your-writes (a GET after a 200 PUT sees the value), which a replica a few milliseconds
behind would break. Only the pages' heavy reads, which tolerate that lag, are marked with
`replica_reads()`: the usage charts, the staff overview's figures and a bucket's counts. A
marked block reads from "replica"; its writes, if any, still go to the primary. Without the
setting there is no "replica" alias and the block reads from the primary like everything else.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

REPLICA = "replica"

# A context variable, not a thread-local: requests of the ASGI front run in threads and tasks.
_replica_reads: ContextVar[bool] = ContextVar("replica_reads", default=False)


@contextmanager
def replica_reads() -> Iterator[None]:
    """Reads inside go to the replica, if there is one. Evaluate the querysets inside: a
    queryset picks its database when it runs, not when it is built."""
    token = _replica_reads.set(True)
    try:
        yield
    finally:
        _replica_reads.reset(token)


class ReplicaRouter:
    """The router of DATABASE_ROUTERS while a replica is configured."""

    def db_for_read(self, model, **hints):
        if _replica_reads.get() and REPLICA in settings.DATABASES:
            return REPLICA
        return DEFAULT_DB_ALIAS

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True  # the same rows on both: an object read from either may point at any

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS  # the replica follows the primary's schema by itself
