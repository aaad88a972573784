"""When PostgreSQL cannot be reached (down, restarting, or no pooled connection free in time),
every answer is a 503 with Retry-After: in the API's own format on /v1/ (api.errors), a plain
page elsewhere (handler503 below and thisdb_site.middleware). Never a 500, and never a traceback
per request: an outage is logged once, when it starts, and again only after a quiet spell.
"""

import logging
import threading
import time

from django.db import InterfaceError, OperationalError
from django.shortcuts import render

log = logging.getLogger("thisdb.outages")

RETRY_AFTER_SECONDS = 5  # a restart takes about this long; the pool reconnects by itself
API_MESSAGE = "the database is unavailable for a moment: retry after Retry-After seconds"
QUIET_SECONDS = 60  # an error this long after the last one starts a new episode (logged again)

_lock = threading.Lock()
_last_error = 0.0
_errors_in_episode = 0


def is_outage(exc: BaseException) -> bool:
    """A failure to reach or talk to the database, not a bug in a query."""
    return isinstance(exc, OperationalError | InterfaceError)


def report(exc: BaseException) -> None:
    """Log the first error of an episode (one line, no traceback); count the rest."""
    global _last_error, _errors_in_episode
    now = time.monotonic()
    with _lock:
        starts = now - _last_error > QUIET_SECONDS
        _errors_in_episode = 1 if starts else _errors_in_episode + 1
        _last_error = now
    if starts:
        log.warning("database unavailable, answering 503 until it is back: %s", _one_line(exc))


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]


def page_response(request):
    """The plain 503 page of the web pages."""
    response = render(request, "503.html", {"retry_after": RETRY_AFTER_SECONDS}, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    # Reported once per episode above, not per request (Django's private flag; not in its stubs).
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response
