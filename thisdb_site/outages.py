"""When PostgreSQL cannot be reached (down, restarting, or no pooled connection free in time),
every answer is a 503 with Retry-After: in the API's own format on /v1/ (api.errors), a plain
page elsewhere (page_response below: thisdb_site.middleware gives it for a view's failure, and
handler500, thisdb_site.views.server_error, for one outside a view). Never a 500, and never a
traceback per request: an outage is logged once, when it starts, and again only after a quiet
spell or once the database was back.

While a process knows the server is unreachable (a connection attempt failed), its breaker is
open: requests that need a connection are refused at once instead of each waiting out the
pool's timeout, and a background probe tries to connect until it succeeds (see `Breaker`).
"""

import logging
import threading
import time
from collections.abc import Callable

from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, OperationalError, connections
from django.shortcuts import render

log = logging.getLogger("thisdb.outages")

RETRY_AFTER_SECONDS = 5  # a restart takes about this long; the pool reconnects by itself
API_MESSAGE = "the database is unavailable for a moment: retry after Retry-After seconds"
QUIET_SECONDS = 60  # an error this long after the last one starts a new episode (logged again)

_lock = threading.Lock()
_last_error = 0.0
_errors_in_episode = 0


# A write refused because the server is read-only (read_only_sql_transaction): the connection
# was made to the primary, which a failover has since turned into a standby (or, through
# PgBouncer, its server connections now reach one). The server is reachable and the statement
# is fine: the connection is in the wrong place.
READ_ONLY_SQLSTATE = "25006"


def is_outage(exc: BaseException) -> bool:
    """A failure to reach or talk to the database, not a bug in a query; or a write that reached
    a server no longer the primary."""
    return isinstance(exc, OperationalError | InterfaceError) or on_a_standby(exc)


def on_a_standby(exc: BaseException) -> bool:
    return isinstance(exc, DatabaseError) and (
        getattr(exc.__cause__, "sqlstate", None) == READ_ONLY_SQLSTATE
    )


def report(exc: BaseException) -> None:
    """Log the first error of an episode (one line, no traceback); count the rest. A connection
    that wrote to a standby is closed, so the pool replaces it: a new one looks for the primary
    (a multi-host DATABASE_URL's target_session_attrs=read-write) instead of failing again."""
    if on_a_standby(exc):
        raw = connections[DEFAULT_DB_ALIAS].connection
        if raw is not None:
            raw.close()  # the pool discards a closed connection when it is given back
    global _last_error, _errors_in_episode
    now = time.monotonic()
    with _lock:
        starts = now - _last_error > QUIET_SECONDS
        _errors_in_episode = 1 if starts else _errors_in_episode + 1
        _last_error = now
    if starts:
        log.warning("database unavailable, answering 503 until it is back: %s", _one_line(exc))


def _episode_ended() -> None:
    """The database is back: the next error starts a new episode, logged again."""
    global _last_error
    with _lock:
        _last_error = 0.0


PROBE_SECONDS = 0.5  # while open, a process tries to connect twice a second, in the background


class Breaker:
    """Open while this process knows PostgreSQL is unreachable: from a failed connection attempt
    (the pool's or the probe's) to the next that succeeds. While open, a request that needs a
    connection is refused at once (thisdb_site.postgresql), a 503 within milliseconds: without
    it each one waited out DATABASE_POOL_TIMEOUT (2 s), and behind two threads a worker's
    queue made that 6 to 8 s. One background thread per process probes meanwhile, so no request
    ever waits on the probe; its first success closes the breaker."""

    def __init__(self) -> None:
        self.down_since: float | None = None  # read without the lock on every connection
        self._lock = threading.Lock()
        self._probing = False

    def trip(self, exc: BaseException, connect: Callable[[], object]) -> None:
        """A connection attempt failed to reach the server: open, and probe with `connect`
        (which closes the breaker when it succeeds) until it does."""
        with self._lock:
            opens = self.down_since is None
            if opens:
                self.down_since = time.monotonic()
            starts_probe = not self._probing
            self._probing = True
        if opens:
            report(exc)  # the episode's one line (unless a request's error logged it already)
        if starts_probe:
            thread = threading.Thread(
                target=self._probe, args=(connect,), name="database-probe", daemon=True
            )
            thread.start()

    def close(self) -> bool:
        """A connection succeeded; True if that ended an outage."""
        if self.down_since is None:
            return False  # the usual case: no lock taken
        with self._lock:
            ended = self.down_since is not None
            self.down_since = None
        if ended:
            _episode_ended()
        return ended

    def _probe(self, connect: Callable[[], object]) -> None:
        while True:
            time.sleep(PROBE_SECONDS)
            with self._lock:
                if self.down_since is None:
                    self._probing = False
                    return
            try:
                connect()
            except Exception:  # the outage is logged once, not at every attempt
                pass


breaker = Breaker()


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]


def page_response(request):
    """The plain 503 page of the web pages."""
    response = render(request, "503.html", {"retry_after": RETRY_AFTER_SECONDS}, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    # Reported once per episode above, not per request (Django's private flag; not in its stubs).
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response
