"""Metrics in Prometheus' text format (prometheus_client), on when THISDB_METRICS_TOKEN is set.

What each process measures (requests, API operations, rate-limited answers, its database pool,
its open watch streams, Celery task runs) goes to files of its own in PROMETHEUS_MULTIPROC_DIR
(prometheus_client's multiprocess mode), which `GET /metrics` adds up over every process of the
service: each granian worker, and each Celery worker process on the worker's exporter, is counted
once. What the whole platform holds (accounts, buckets, keys, stored bytes from beat's figures;
whether PostgreSQL and Redis answer; when beat last sent a task) is read when scraped, on the
web tier only. docs/operations.md lists every metric.

Labels are of low cardinality only: a route's pattern, a method, a status class, an operation,
a reason, a task's name; never a key, a bucket, a token or an account.
"""

import glob
import hmac
import logging
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Iterator
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Each process writes its files there from its first metric on (`make serve` and `make
    # worker` make it, empty, before they start; a process started otherwise may be first).
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

# --- What each process measures ------------------------------------------------------------------

# The request histogram's buckets, seconds: the API's GET and SET take about 1 ms, a page 5-50
# ms; 2.5 s is past the pool's timeout.
BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, float("inf"))

REQUESTS = Counter(
    "thisdb_http_requests_total",
    "Requests answered by Django, by route pattern, method and status class.",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "thisdb_http_request_duration_seconds",
    "Time from a request's arrival in Django to its answer (a body is read before; a stream's "
    "or an export's answer is sent after), by route pattern and method.",
    ["route", "method"],
    buckets=BOUNDS,
)
OPERATIONS = Counter(
    "thisdb_api_operations_total",
    "API operations (api.views) by operation and result.",
    ["operation", "result"],
)
RATE_LIMITED = Counter(
    "thisdb_rate_limited_total",
    "Answers 429 (Too Many Requests), by the limit that refused them.",
    ["reason"],
)
POOL_CONNECTIONS = Gauge(
    "thisdb_database_pool_connections",
    "PostgreSQL connections the web processes' pools hold.",
    multiprocess_mode="livesum",
)
POOL_IN_USE = Gauge(
    "thisdb_database_pool_connections_in_use",
    "PostgreSQL connections of the web processes' pools lent to a request now.",
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    "thisdb_database_pool_requests_waiting",
    "Requests waiting for a PostgreSQL connection from a web process's pool now.",
    multiprocess_mode="livesum",
)
WATCH_STREAMS = Gauge(
    "thisdb_watch_streams_open",
    "Watch streams and long-polls open on the web processes (api.watchhub).",
    multiprocess_mode="livesum",
)
TASK_RUNS = Counter(
    "thisdb_celery_task_runs_total", "Celery task runs finished, by task.", ["task"]
)
TASK_FAILURES = Counter(
    "thisdb_celery_task_failures_total", "Celery task runs that raised, by task.", ["task"]
)
TASK_SECONDS = Histogram(
    "thisdb_celery_task_duration_seconds",
    "How long a Celery task run took, by task.",
    ["task"],
    # Beat's tasks take milliseconds to their time limit (55 s).
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 55.0),
)
SWEPT = Counter(
    "thisdb_swept_rows_total",
    "Rows beat's sweeps deleted (expired keys, history, tokens) or revoked (expired API keys).",
    ["kind"],
)

METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
# A status's result for thisdb_api_operations_total (any other: "other").
RESULTS = {
    200: "ok",
    304: "not_modified",
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    411: "length_required",
    412: "precondition_failed",
    413: "too_large",
    429: "rate_limited",
    500: "error",
    503: "unavailable",
}
# What beat's sweeps return (api.tasks, accounts.tasks), as thisdb_swept_rows_total's kind.
SWEEPS = {
    "api.tasks.sweep_expired_items": "items",
    "api.tasks.sweep_history": "history",
    "api.tasks.sweep_expired_tokens": "tokens",
    "accounts.tasks.expire_api_keys": "api_keys",
}
# Pending request figures are flushed, and the pool and the streams sampled, this often: a
# scrape (15 s apart) sees every process as of a second ago at most.
SAMPLE_SECONDS = 1


class MetricsMiddleware:
    """Counts and times each request (installed first when THISDB_METRICS_TOKEN is set). Adds
    no statement and no Redis command. A request adds its figures to this process's pending
    ones, in memory (about 1 us); the sampler flushes them to the metrics files every second
    (writing a file's value costs about 2 us, and a request has four), and a scrape of this
    process first. A process that ends loses its last second."""

    def __init__(self, get_response):
        self.get_response = get_response
        start_sampling()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        match = request.resolver_match
        route = match.route if match is not None else _unrouted(request.path_info)
        status = response.status_code
        key = (
            route,
            request.method if request.method in METHODS else "other",
            status,
            getattr(request, "thisdb_operation", None),  # api.dispatch names the operation
            getattr(response, "thisdb_limit", "other") if status == 429 else None,
        )
        slot = bisect_left(BOUNDS, elapsed) + 1  # the histogram's bucket (le: elapsed <= bound)
        with _lock:
            figures = _pending.get(key)
            if figures is None:
                figures = _pending[key] = [0.0] * (len(BOUNDS) + 1)
            figures[0] += elapsed
            figures[slot] += 1
        return response


# What requests measured since the last flush: (route, method, status, operation, limit) ->
# [seconds in all, then how many fell in each bucket of the histogram].
_pending: dict[tuple, list[float]] = {}
_lock = threading.Lock()


def flush() -> None:
    """Write this process's pending request figures to its metrics files."""
    global _pending
    with _lock:
        pending, _pending = _pending, {}
    for (route, method, status, operation, limit), figures in pending.items():
        count = sum(figures[1:])
        REQUESTS.labels(route, method, f"{status // 100}xx").inc(count)
        timed = REQUEST_SECONDS.labels(route, method)
        # The histogram's own values, added to at once: its observe() takes one observation.
        timed._sum.inc(figures[0])
        for bucket, observed in zip(timed._buckets, figures[1:], strict=True):
            if observed:
                bucket.inc(observed)
        if operation is not None:
            OPERATIONS.labels(operation, RESULTS.get(status, "other")).inc(count)
        if limit is not None:
            RATE_LIMITED.labels(limit).inc(count)


def _unrouted(path: str) -> str:
    """The route label of a request no route matched (a 404, or a static file)."""
    return "static" if path.startswith("/" + settings.STATIC_URL) else "unmatched"


# --- Gauges sampled in each web process ----------------------------------------------------------

_sampling = {"pid": 0}


def start_sampling() -> None:
    """Start this process's sampler of its pool and watch streams (once per process)."""
    if _sampling["pid"] == os.getpid():
        return
    _sampling["pid"] = os.getpid()
    threading.Thread(target=_keep_sampling, name="metrics", daemon=True).start()


def _keep_sampling() -> None:
    while True:
        try:
            flush()
            sample()
        except Exception:  # a sample must never stop the sampler
            log.exception("could not sample the pool and the watch streams")
        time.sleep(SAMPLE_SECONDS)


def sample() -> None:
    """This process's pool (psycopg_pool's get_stats) and open watch streams, now."""
    from django.db.backends.postgresql import base

    from api.watchhub import hub

    # Django's pools by alias (not in its stubs); read, never made here: a process that has not
    # opened one yet has none.
    pool = base.DatabaseWrapper._connection_pools.get("default")  # type: ignore[attr-defined]
    if pool is not None:
        stats = pool.get_stats()
        size = stats.get("pool_size", 0)
        POOL_CONNECTIONS.set(size)
        POOL_IN_USE.set(size - stats.get("pool_available", 0))
        POOL_WAITING.set(stats.get("requests_waiting", 0))
    WATCH_STREAMS.set(hub.serving)


# --- The whole platform, read when scraped -------------------------------------------------------

CHECK_TIMEOUT_MS = 1000  # a scrape waits at most this for PostgreSQL's figures


class PlatformCollector(Collector):
    """Beat's figures and whether PostgreSQL and Redis answer, asked at each scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from console import health

        database, redis = health.database(), health.redis()
        yield GaugeMetricFamily(
            "thisdb_postgresql_up", "Whether PostgreSQL answers (1) or not (0).", database.ok
        )
        if redis.configured:
            yield GaugeMetricFamily(
                "thisdb_redis_up", "Whether Redis answers (1) or not (0).", redis.ok
            )
        if not database.ok:
            return
        try:
            figures = _figures()
        except Exception:
            log.exception("could not read the platform's figures for /metrics")
            return
        for name, help_text, value in figures:
            if value is not None:
                yield GaugeMetricFamily(name, help_text, value)


def _figures() -> list[tuple[str, str, float | None]]:
    """The staff overview's figures (console.admin_site), and beat's and the worker's last
    heartbeats (console.models), in one statement on PostgreSQL."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from accounts.models import Account
    from api.models import Bucket
    from console.models import TaskHeartbeat

    users = get_user_model()._meta.db_table
    buckets, accounts = Bucket._meta.db_table, Account._meta.db_table
    beats = TaskHeartbeat._meta.db_table
    seconds = "CAST(strftime('%%s', max(at)) AS REAL)"
    if connection.vendor == "postgresql":
        seconds = "extract(epoch FROM max(at))"
    sql = (
        f"SELECT (SELECT count(*) FROM {users}), (SELECT count(*) FROM {buckets}),"
        f" (SELECT coalesce(sum(key_count), 0) FROM {buckets}),"
        f" (SELECT coalesce(sum(stored_bytes), 0) FROM {accounts}),"
        f" (SELECT {seconds} FROM {beats} WHERE event = %s),"
        f" (SELECT {seconds} FROM {beats} WHERE event = %s)"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"SET LOCAL statement_timeout = {CHECK_TIMEOUT_MS}")
        cursor.execute(sql, [TaskHeartbeat.SENT, TaskHeartbeat.FINISHED])
        row = cursor.fetchone()
    accounts_n, buckets_n, keys, stored, sent, finished = row
    return [
        ("thisdb_accounts", "Accounts on the platform.", accounts_n),
        ("thisdb_buckets", "Buckets on the platform.", buckets_n),
        ("thisdb_keys", "Keys in every bucket, as beat last counted them.", keys),
        ("thisdb_stored_bytes", "Bytes stored by every account, as beat last counted.", stored),
        (
            "thisdb_beat_last_sent_timestamp_seconds",
            "When beat last sent a task (Unix time).",
            None if sent is None else float(sent),
        ),
        (
            "thisdb_celery_last_finished_timestamp_seconds",
            "When a Celery worker last finished a task (Unix time).",
            None if finished is None else float(finished),
        ),
    ]


# --- Serving them ----------------------------------------------------------------------------


def authorized(header: str) -> bool:
    """Whether an Authorization header carries the metrics token (compared in constant time)."""
    scheme, _, credential = header.partition(" ")
    token = settings.THISDB_METRICS_TOKEN.encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(), token)


def exposition(platform: bool) -> bytes:
    """Every process's metrics (this service's folder, the dead processes' live gauges
    dropped), and with `platform` the platform's own, in Prometheus' text format."""
    flush()  # this process's, now; the others' are a second old at most
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        forget_dead_processes(folder)
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes, folder)
    else:
        processes = REGISTRY  # one process (runserver, the tests): its own registry
    text = generate_latest(processes)
    if platform:
        whole = CollectorRegistry()
        whole.register(PlatformCollector())
        text += generate_latest(whole)
    return text


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics: a 404 without THISDB_METRICS_TOKEN, a 403 without it in the request."""
    if not settings.THISDB_METRICS_TOKEN:
        raise Http404("metrics are off (THISDB_METRICS_TOKEN is not set)")
    if not authorized(request.META.get("HTTP_AUTHORIZATION", "")):
        return HttpResponse(FORBIDDEN, status=403, content_type="text/plain; charset=utf-8")
    response = HttpResponse(exposition(platform=True), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response


FORBIDDEN = b"send the metrics token: Authorization: Bearer <THISDB_METRICS_TOKEN>\n"


def forget_dead_processes(folder: str) -> None:
    """Drop the live gauges of processes that are gone (a granian worker replaced, a Celery
    pool process ended); their counters and histograms stay, as what they counted happened."""
    for path in glob.glob(os.path.join(folder, "gauge_live*_*.db")):
        pid = int(path.rsplit("_", 1)[1].removesuffix(".db"))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, folder)
        except PermissionError:
            pass  # alive, another user's


# --- The Celery worker -----------------------------------------------------------------------

_started: dict[str, float] = {}  # task id: when its run started (perf_counter)


def watch_tasks() -> None:
    """Count and time every task run of this worker (Celery's signals), and serve them."""
    from celery import signals

    signals.task_prerun.connect(_task_started, weak=False)
    signals.task_postrun.connect(_task_finished, weak=False)
    signals.task_failure.connect(_task_failed, weak=False)
    signals.worker_process_shutdown.connect(_pool_process_ended, weak=False)


def _task_started(task_id=None, **kwargs) -> None:
    if task_id is not None:
        _started[task_id] = time.perf_counter()


def _task_finished(task_id=None, task=None, retval=None, state=None, **kwargs) -> None:
    started = _started.pop(task_id, None) if task_id is not None else None
    if task is None:
        return
    TASK_RUNS.labels(task.name).inc()
    if started is not None:
        TASK_SECONDS.labels(task.name).observe(time.perf_counter() - started)
    kind = SWEEPS.get(task.name)
    if kind is not None and state == "SUCCESS":
        rows = retval.get("revoked") if isinstance(retval, dict) else retval
        if isinstance(rows, int):
            SWEPT.labels(kind).inc(rows)


def _task_failed(sender=None, **kwargs) -> None:
    if sender is not None:
        TASK_FAILURES.labels(sender.name).inc()


def _pool_process_ended(pid=None, **kwargs) -> None:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        multiprocess.mark_process_dead(pid or os.getpid(), folder)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:
        pass  # a scrape every 15 s is no news


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve_worker_metrics(address: str) -> WSGIServer | None:
    """The worker's exporter: GET /metrics at `address` (host:port), with the same token, in a
    thread of the worker's main process. None when the address is taken (logged)."""
    host, _, port = address.rpartition(":")

    def app(environ, start_response):
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: the worker serves /metrics\n"]
        if not authorized(environ.get("HTTP_AUTHORIZATION", "")):
            start_response("403 Forbidden", [("Content-Type", "text/plain; charset=utf-8")])
            return [FORBIDDEN]
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [exposition(platform=False)]

    try:
        server = make_server(host or "127.0.0.1", int(port), app, _ThreadingServer, _QuietHandler)
    except OSError as error:
        log.error("the worker's metrics cannot be served at %s: %s", address, error)
        return None
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
