"""Django's PostgreSQL backend, failing fast while the server is known to be unreachable.

Every connection the pool opens goes through `WatchedConnection`: a failure to reach the server
(nothing listens at its address) opens the process's breaker (thisdb_site.outages.breaker), a
success closes it. While it is open, `DatabaseWrapper` refuses a new connection at once, which
the API and the pages answer 503 with Retry-After, rather than waiting out the pool's timeout.
"""

import socket
from functools import partial
from typing import Any, Self

import psycopg
from django.db import DEFAULT_DB_ALIAS
from django.db.backends.postgresql import base
from psycopg.conninfo import conninfo_to_dict

from thisdb_site.outages import breaker

REACH_TIMEOUT_SECONDS = 1  # the check that a failed connection's server is there at all


class WatchedConnection(psycopg.Connection[Any]):
    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
        try:
            conn = super().connect(conninfo, **kwargs)
        except psycopg.OperationalError as exc:
            if breaker.down_since is None and not _server_listens(conninfo, kwargs):
                breaker.trip(exc, partial(_probe, conninfo, kwargs))
            raise
        _reached()
        return conn


def _probe(conninfo: str, kwargs: dict[str, Any]) -> None:
    """The breaker's probe: a plain connection, whose failures trip nothing."""
    psycopg.Connection.connect(conninfo, **kwargs).close()
    _reached()


def _reached() -> None:
    if breaker.close():
        # Back: the pool's connections from before the outage are dead (the server closed
        # them); replace them rather than fail the first requests that take them.
        # Django's pools, one per database alias (not in its stubs).
        pools = base.DatabaseWrapper._connection_pools.values()  # type: ignore[attr-defined]
        for pool in pools:
            if not pool.closed:
                pool.drain()


def _server_listens(conninfo: str, kwargs: dict[str, Any]) -> bool:
    """Whether anything accepts a connection at the server's address. A server that answers
    but refuses ("too many connections" for the role, a wrong password, shutting down) is
    reachable: no outage to fail fast on, and a worker at its role's limit keeps serving from
    its pooled connections. (psycopg gives no SQLSTATE for a refused connection, and the
    server's message may be in any language: the address itself is asked.) Of several hosts
    (target_session_attrs=read-write), any that listens counts: between a primary's end and a
    standby's promotion, requests wait out the pool's timeout and are 503
    (tests/test_failover.py)."""
    params = conninfo_to_dict(conninfo, **kwargs)
    hosts = str(params.get("hostaddr") or params.get("host") or "").split(",")
    # A multi-host URL (thisdb_site.database_urls) gives one port for all or one for each.
    ports = str(params.get("port") or "").split(",")
    for host, given in zip(hosts, ports * len(hosts) if len(ports) == 1 else ports, strict=False):
        port = int(given or 5432)
        try:
            if host and not host.startswith("/"):
                socket.create_connection((host, port), timeout=REACH_TIMEOUT_SECONDS).close()
            else:  # a Unix socket in that folder (libpq's default one without a host)
                with socket.socket(socket.AF_UNIX) as unix:
                    unix.settimeout(REACH_TIMEOUT_SECONDS)
                    unix.connect(f"{host or '/var/run/postgresql'}/.s.PGSQL.{port}")
            return True
        except OSError:
            continue
    return False


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, settings_dict, alias="default"):
        super().__init__(settings_dict, alias)
        pool = settings_dict.get("OPTIONS", {}).get("pool")
        if isinstance(pool, dict) and alias == DEFAULT_DB_ALIAS:
            # The breaker watches the primary only: a replica that is down (DATABASE_REPLICA_URL,
            # thisdb_site.routers) costs the pages' heavy reads a 503 after the pool's timeout,
            # never the API's requests, which it would refuse at once.
            pool.setdefault("connection_class", WatchedConnection)

    def get_new_connection(self, conn_params):
        if breaker.down_since is not None:
            # Wrapped by Django as its OperationalError: a 503, as any outage.
            raise psycopg.OperationalError(
                "PostgreSQL is unreachable: refused at once until a connection succeeds"
            )
        return super().get_new_connection(conn_params)
