"""GET /metrics (thisdb_site.metrics) in one process: who may read it, and what the requests,
the API's operations, its 429s and the platform's figures read there."""

import json
import os
import subprocess
import sys

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from api import limits
from api.rollups import refresh_stored_figures
from thisdb_site import metrics

TOKEN = "metrics-secret-1"
ITEM_ROUTE = "v1/<str:bucket_id>/<key:key>"


@pytest.fixture(autouse=True)
def metrics_on(settings):
    settings.THISDB_METRICS_TOKEN = TOKEN
    settings.MIDDLEWARE = ["thisdb_site.metrics.MetricsMiddleware", *settings.MIDDLEWARE]


def scrape(token: str = TOKEN) -> dict[tuple, float]:
    response = Client().get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, *sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, *sorted(labels.items())), 0.0)


def test_without_the_token_setting_metrics_are_a_404(settings, db):
    settings.THISDB_METRICS_TOKEN = ""
    response = Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 404


@pytest.mark.parametrize(
    "header", [None, f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer", TOKEN, f"Bearer {TOKEN[:-1]}"]
)
def test_without_the_right_bearer_token_metrics_are_a_403(header, db):
    headers = {} if header is None else {"Authorization": header}
    response = Client().get("/metrics", headers=headers)
    assert response.status_code == 403
    assert b"Authorization: Bearer" in response.content
    assert b"thisdb_" not in response.content


def test_requests_are_counted_and_timed_by_route_method_and_status_class(alice, bucket):
    before = scrape()
    alice.set(bucket, "k", "v")
    for _ in range(3):
        assert alice.client.get(f"/v1/{bucket}/k").status_code == 200
    assert alice.client.get(f"/v1/{bucket}/missing").status_code == 404
    after = scrape()

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("thisdb_http_requests_total", route=ITEM_ROUTE, method="GET", status="2xx") == 3
    assert grew("thisdb_http_requests_total", route=ITEM_ROUTE, method="GET", status="4xx") == 1
    assert grew("thisdb_http_requests_total", route=ITEM_ROUTE, method="POST", status="2xx") == 1
    timed = dict(route=ITEM_ROUTE, method="GET")
    assert grew("thisdb_http_request_duration_seconds_count", **timed) == 4
    assert grew("thisdb_http_request_duration_seconds_bucket", le="+Inf", **timed) == 4
    assert 0 < grew("thisdb_http_request_duration_seconds_sum", **timed) < 10
    # Labels never hold a bucket or a key.
    assert not [labels for labels in after if bucket in str(labels) or "'k'" in str(labels)]


def test_api_operations_are_counted_by_result_412_and_409_included(alice, bucket):
    before = scrape()
    tag = alice.set(bucket, "a", "1")["ETag"]
    stale = {"HTTP_IF_MATCH": '"999999"'}
    client = alice.client
    assert (
        client.post(f"/v1/{bucket}/a", "2", content_type="text/plain", **stale).status_code == 412
    )
    assert client.delete(f"/v1/{bucket}/a", **stale).status_code == 412
    assert client.patch(f"/v1/{bucket}/n", "+1", content_type="text/plain").status_code == 200
    check = {"checks": [{"key": "a", "version": tag.strip('"') + "0"}], "ops": []}
    body = json.dumps(check)
    assert client.post(f"/v1/{bucket}", body, content_type="application/json").status_code == 409
    assert client.get(f"/v1/{bucket}/nothing").status_code == 404
    assert client.get(f"/v1/{bucket}").status_code == 200
    after = scrape()
    expected = {
        ("set", "ok"): 1,
        ("set", "precondition_failed"): 1,
        ("delete", "precondition_failed"): 1,
        ("increment", "ok"): 1,
        ("transaction", "conflict"): 1,
        ("get", "not_found"): 1,
        ("list_keys", "ok"): 1,
    }
    for (operation, result), count in expected.items():
        labels = dict(operation=operation, result=result)
        grew = value(after, "thisdb_api_operations_total", **labels) - value(
            before, "thisdb_api_operations_total", **labels
        )
        assert grew == count, (operation, result, grew)


def test_rate_limited_answers_are_counted_by_reason(settings, alice, bucket):
    settings.THISDB_KEY_WRITES_PER_SECOND = 1
    before = scrape()
    assert alice.set(bucket, "k", "1").status_code == 200
    assert alice.set(bucket, "k", "2").status_code == 429
    after = scrape()
    reason = dict(reason="key_writes")
    assert (
        value(after, "thisdb_rate_limited_total", **reason)
        - value(before, "thisdb_rate_limited_total", **reason)
        == 1
    )
    grew = value(after, "thisdb_api_operations_total", operation="set", result="rate_limited")
    assert (
        grew - value(before, "thisdb_api_operations_total", operation="set", result="rate_limited")
        == 1
    )


def test_the_platforms_figures_are_beats_and_postgresql_and_redis_answer(alice, bob, bucket):
    alice.set(bucket, "k", "12345")
    bob.new_bucket()
    from django.utils import timezone

    refresh_stored_figures(timezone.now())
    samples = scrape()
    assert value(samples, "thisdb_accounts") == 2
    assert value(samples, "thisdb_buckets") == 2
    assert value(samples, "thisdb_keys") == 1
    assert value(samples, "thisdb_stored_bytes") == len("k") + len("12345")
    assert value(samples, "thisdb_postgresql_up") == 1
    assert value(samples, "thisdb_redis_up") == 1
    # No beat has run in this database: no time to report, rather than a made-up one.
    assert ("thisdb_beat_last_sent_timestamp_seconds",) not in samples


def test_redis_that_does_not_answer_reads_0(settings, db):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    limits.reset()
    assert value(scrape(), "thisdb_redis_up") == 0
    assert value(scrape(), "thisdb_postgresql_up") == 1


def test_measuring_adds_no_statement_to_a_request(settings, alice, bucket):
    """What a GET costs in statements with the metrics on is what it costs without them (Redis
    commands: tests/test_prometheus.py counts none on /metrics' side either)."""
    alice.set(bucket, "k", "v")
    alice.client.get(f"/v1/{bucket}/k")  # the lookups are cached now

    def statements(client) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/v1/{bucket}/k").status_code == 200
        return len(queries)

    on = statements(alice.client)
    settings.MIDDLEWARE = settings.MIDDLEWARE[1:]
    off = statements(Client(headers={"X-Api-Key": alice.key}))
    assert on == off == 1


def test_the_sampler_reads_open_watch_streams(db):
    from api.watchhub import hub

    hub.serving += 2
    try:
        metrics.sample()
        assert value(scrape(), "thisdb_watch_streams_open") == 2
    finally:
        hub.serving -= 2
        metrics.sample()


def test_a_dead_processs_gauges_are_dropped_and_its_counters_kept(tmp_path):
    """What a granian worker that was replaced leaves in the folder: its counters still count,
    its pool and streams no longer do."""
    script = (
        "from prometheus_client import Counter, Gauge\n"
        "Gauge('thisdb_watch_streams_open', 'x', multiprocess_mode='livesum').set(5)\n"
        "Counter('thisdb_rate_limited', 'x', ['reason']).labels('key_writes').inc(3)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True)

    def read() -> dict:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, str(tmp_path))
        return {
            (s.name, *sorted(s.labels.items())): s.value
            for family in registry.collect()
            for s in family.samples
        }

    assert value(read(), "thisdb_watch_streams_open") == 5
    metrics.forget_dead_processes(str(tmp_path))
    after = read()
    assert ("thisdb_watch_streams_open",) not in after
    assert value(after, "thisdb_rate_limited_total", reason="key_writes") == 3
