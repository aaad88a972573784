"""Django's PostgreSQL backend, failing fast while the server is known to be unreachable.

Every connection the pool opens goes through `WatchedConnection`: a failure to reach the server
opens the process's breaker (thisdb_site.outages.breaker), a success closes it. While it is
open, `DatabaseWrapper` refuses a new connection at once, which the API and the pages answer
503 with Retry-After, rather than waiting out the pool's timeout.
"""

from functools import partial
from typing import Any, Self

import psycopg
from django.db.backends.postgresql import base

from thisdb_site.outages import breaker

# Failures that mean the server cannot be reached: no SQLSTATE (refused, timed out, no route),
# or "cannot connect now" (starting up or shutting down). A server that answers "too many
# connections" or refuses a password is reachable: that is not an outage to fail fast on.
_UNREACHABLE = {None, "57P03"}


class WatchedConnection(psycopg.Connection[Any]):
    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
        try:
            conn = super().connect(conninfo, **kwargs)
        except psycopg.OperationalError as exc:
            if exc.sqlstate in _UNREACHABLE:
                breaker.trip(exc, partial(_probe, cls, conninfo, kwargs))
            raise
        if breaker.close():
            # Back: the pool's connections from before the outage are dead (the server closed
            # them); replace them rather than fail the first requests that take them.
            # Django's pools, one per database alias (not in its stubs).
            pools = base.DatabaseWrapper._connection_pools.values()  # type: ignore[attr-defined]
            for pool in pools:
                if not pool.closed:
                    pool.drain()
        return conn


def _probe(cls: type[WatchedConnection], conninfo: str, kwargs: dict[str, Any]) -> None:
    cls.connect(conninfo, **kwargs).close()


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, settings_dict, alias="default"):
        super().__init__(settings_dict, alias)
        pool = settings_dict.get("OPTIONS", {}).get("pool")
        if isinstance(pool, dict):
            pool.setdefault("connection_class", WatchedConnection)

    def get_new_connection(self, conn_params):
        if breaker.down_since is not None:
            # Wrapped by Django as its OperationalError: a 503, as any outage.
            raise psycopg.OperationalError(
                "PostgreSQL is unreachable: refused at once until a connection succeeds"
            )
        return super().get_new_connection(conn_params)
