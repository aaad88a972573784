"""Request logs: an X-Request-Id on every answer and, with THISDB_LOG_FORMAT=json, one JSON object
a line for each request and each Celery task run (docs/operations.md, "Request logs").

A request's line names its route's pattern, never its path: a path holds a bucket's id and a
key's name, and its query string a watch's token. Nothing here reads a header but X-Request-Id and
X-Forwarded-For, nor a body, so no line can hold an API key, a token or a value.

The front (thisdb_site.front) takes the id and the time a request arrives, before its body is
read; Django's part (RequestLogMiddleware) answers with the id and writes the line once the answer
is made, with what only Django knows (the route, the account). Requests the front answers itself
(a body too slow, a bulk transfer refused) get their id and line from the front. Without the front
(`manage.py runserver`, the test client) the middleware does it all.
"""

import logging
import random
import re
import time

from celery.signals import after_setup_logger, after_setup_task_logger, task_postrun, task_prerun
from django.conf import settings
from django.utils.functional import LazyObject, empty
from pythonjsonlogger.json import JsonFormatter

HEADER = "X-Request-Id"
# A proxy's id is kept only when it is short and plain: it goes into every log line and back to
# the client, so it may hold nothing a log reader or a header could misread (64: a UUID with
# room for a prefix).
SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Environ keys the front sets for Django's part (a WSGI environ may carry keys of the server's).
ENVIRON_ID, ENVIRON_STARTED = "thisdb.request_id", "thisdb.started"

requests_log = logging.getLogger("thisdb.requests")
tasks_log = logging.getLogger("thisdb.tasks")


def json_enabled() -> bool:
    return settings.THISDB_LOG_FORMAT == "json"


def request_id(offered: str | None) -> str:
    """The id the proxy sent when it is a safe one, else a new one."""
    if offered and SAFE_ID.fullmatch(offered):
        return offered
    # 128 random bits as 32 hex digits, made on every request (in text mode too): from the
    # process's Mersenne Twister, which asks the kernel nothing (os.urandom is a system call a
    # request); the random module seeds it anew in each forked worker, so workers do not repeat
    # each other. An id tells requests apart; it is no secret, so it need not be unpredictable.
    return f"{random.getrandbits(128):032x}"


def client_address(remote: str, forwarded: str | None, proxy_count: int) -> str:
    """The client's address behind `proxy_count` trusted proxies: the entry they added to
    X-Forwarded-For, not the last proxy's (with 0, the header is the client's to forge)."""
    if proxy_count and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if len(hops) >= proxy_count:
            return hops[-proxy_count]
    return remote


def log_request(
    rid: str,
    method: str,
    route: str | None,
    status: int,
    started: float,
    account: int | None,
    client: str,
) -> None:
    """One request's line (route None: no route matched, or the front answered it itself)."""
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    requests_log.info(
        "%s %s %s",
        method,
        route or "-",
        status,
        extra={
            "request_id": rid,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            "account": account,
            "client": client,
        },
    )


class RequestLogMiddleware:
    """Every answer that Django makes carries the request's id; with JSON logs, its line is
    written here. First in the chain, so it sees every answer: a 404 of the URL resolver, a 503
    of an outage, a 429 of a limit, a streamed export's head, a watch's before the front takes
    the stream over (the id goes out with it). It runs no query and no Redis command."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.log = json_enabled()
        self.proxy_count = settings.THISDB_PROXY_COUNT

    def __call__(self, request):
        meta = request.META
        rid = meta.get(ENVIRON_ID)
        if rid is None:
            rid = meta[ENVIRON_ID] = request_id(meta.get("HTTP_X_REQUEST_ID"))
        started = meta.get(ENVIRON_STARTED) or time.perf_counter()
        response = self.get_response(request)
        # Stored as Django stores a checked header, without the checks: the id is ASCII without
        # a newline by construction (SAFE_ID, or hex digits), as api.renderers.ApiHeaders does.
        response.headers._store["x-request-id"] = (HEADER, rid)
        if self.log:
            match = request.resolver_match
            log_request(
                rid,
                request.method,
                match.route if match is not None else None,
                response.status_code,
                started,
                _account(request),
                # REMOTE_ADDR as ForwardedForMiddleware left it (it runs after this one), or as
                # the server gave it when there is no proxy.
                meta.get("REMOTE_ADDR", ""),
            )
        return response


def _account(request) -> int | None:
    """The account (user id) the request acted for, if it is known already: the API's caller
    (api.principals.Principal) or the person of a page that loaded them. A page that never
    looked at its user is not made to now: that would cost a query or two."""
    user = request.__dict__.get("user")
    if isinstance(user, LazyObject):
        user = user._wrapped
        if user is empty:
            return None
    if user is None:
        return None
    user_id = getattr(user, "user_id", None)  # a Principal
    if user_id is None and getattr(user, "is_authenticated", False):
        user_id = user.pk
    return user_id


class JsonLines(JsonFormatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, and a record's own
    fields (a request's, a task's). Django's own request records (django.request's 4xx and 5xx)
    name the path, which holds a key's name: they name the route and the request's id instead."""

    def __init__(self, *args, **kwargs):
        super().__init__(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )

    def add_fields(self, log_data, record, message_dict) -> None:
        super().add_fields(log_data, record, message_dict)
        request = log_data.pop("request", None)
        if request is not None and hasattr(request, "path"):
            log_data["message"] = _without_path(record, request)
            log_data["request_id"] = request.META.get(ENVIRON_ID)
            match = getattr(request, "resolver_match", None)
            log_data["route"] = match.route if match is not None else None


def _without_path(record: logging.LogRecord, request) -> str:
    path = request.path
    escaped = path.encode("unicode_escape").decode("ascii")  # as Django's log_response gives it
    args = record.args if isinstance(record.args, tuple) else ()
    kept = tuple("<path>" if arg in (path, escaped) else arg for arg in args)
    try:
        return str(record.msg) % kept if kept else str(record.msg)
    except (TypeError, ValueError):
        return str(record.msg)


# --- Celery: a line per task run, and the worker's and beat's own lines as JSON too -----------

_task_started: dict[str, float] = {}  # task id -> when it started, in this process


@task_prerun.connect
def _task_prerun(task_id=None, **kwargs) -> None:
    if task_id is not None and json_enabled():
        _task_started[task_id] = time.perf_counter()


@task_postrun.connect
def _task_postrun(task_id=None, task=None, state=None, **kwargs) -> None:
    started = _task_started.pop(task_id, None) if task_id is not None else None
    if started is None or task is None:
        return
    tasks_log.info(
        "%s %s",
        task.name,
        state,
        extra={
            "task": task.name,
            "task_id": task_id,
            "state": state,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )


@after_setup_logger.connect
@after_setup_task_logger.connect
def _json_celery_logs(logger=None, **kwargs) -> None:
    """Celery sets its own handlers up (the worker's and beat's stderr, or --logfile) in place of
    Django's LOGGING: with JSON logs they write JSON too."""
    if logger is not None and json_enabled():
        for handler in logger.handlers:
            handler.setFormatter(JsonLines())
