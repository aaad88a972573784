"""A real Prometheus (Debian's, installed by deploy/ensure-packages.sh) scraping the production
web tier (`make serve`, 2 workers) and a Celery worker (`make worker`, 2 pool processes) with the
shipped configuration of deploy/prometheus/, whose rules promtool checks and tests."""

import json
import os
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.utils import timezone
from prometheus_client.metrics import MetricWrapperBase

from api.models import Item
from api.tasks import refresh_stored_figures, sweep_expired_items
from console.models import TaskHeartbeat, beat
from tests.conftest import RUN_PREFIX, Persona
from tests.serving import PROJECT, free_port, request, served, worker_pids
from tests.test_slow_clients import database_url
from thisdb_site import metrics

DEPLOY = PROJECT / "deploy" / "prometheus"
TOKEN = "scrape-token-7"
ITEM = 'route="v1/<str:bucket_id>/<key:key>"'
SWEEP = 'task="api.tasks.sweep_expired_items"'


@pytest.fixture(scope="module")
def promtool() -> str:
    """Debian's prometheus (and its promtool), from the project's script: a new machine gets
    them the way CI does."""
    subprocess.run(["bash", "deploy/ensure-packages.sh", "prometheus"], cwd=PROJECT, check=True)
    return "promtool"


def shipped_config(tmp_path: Path, web: int, worker: int, interval: str = "15s") -> Path:
    """deploy/prometheus/prometheus.yml with this test's targets, token file and rules' path."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = interval
    config["global"]["evaluation_interval"] = interval
    config["rule_files"] = [str(DEPLOY / name) for name in config["rule_files"]]
    targets = {"thisdb-web": web, "thisdb-worker": worker}
    for job in config["scrape_configs"]:
        job["authorization"]["credentials_file"] = str(token_file)
        job["static_configs"] = [{"targets": [f"127.0.0.1:{targets[job['job_name']]}"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_shipped_configuration_and_rules_pass_promtool(promtool, tmp_path):
    config = shipped_config(tmp_path, 8000, 9808)
    for args in (
        ["check", "config", str(config)],
        ["check", "rules", str(DEPLOY / "thisdb.rules.yml")],
        ["test", "rules", str(DEPLOY / "thisdb.rules.test.yml")],
    ):
        done = subprocess.run([promtool, *args], cwd=DEPLOY, capture_output=True, text=True)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert "SUCCESS" in done.stdout


def exported_names() -> set[str]:
    """Every series name the platform exports: its processes' metrics and the platform's own."""
    names = set()
    for metric in vars(metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        for family in metric.describe():
            suffixes = {
                "counter": ["_total"],
                "histogram": ["_bucket", "_sum", "_count"],
                "gauge": [""],
            }[family.type]
            names.update(family.name + suffix for suffix in suffixes)
    beat("api.tasks.sweep_history", TaskHeartbeat.SENT)
    beat("api.tasks.sweep_history", TaskHeartbeat.FINISHED)
    names.update(family.name for family in metrics.PlatformCollector().collect())
    return names


@pytest.mark.django_db
def test_every_metric_the_dashboard_and_the_rules_use_is_exported():
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    rules = yaml.safe_load((DEPLOY / "thisdb.rules.yml").read_text())
    expressions += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    used = {name for expr in expressions for name in re.findall(r"\bthisdb_\w+", expr)}
    exported = exported_names()
    assert len(used) >= 15
    assert used <= exported, used - exported
    assert len(dashboard["panels"]) == len({p["id"] for p in dashboard["panels"]})


class Prometheus:
    def __init__(self, config: Path, data: Path):
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(data.parent / "prometheus.log", "wb"),
        )
        wait_for(lambda: self._get("/-/ready") is not None, "Prometheus to be ready")

    def _get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.read()
        except OSError:
            return None

    def query(self, expr: str) -> float | None:
        """The value of an instant query with one series (None: no series)."""
        body = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        if body is None:
            return None
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        result = answer["data"]["result"]
        assert len(result) <= 1, (expr, result)
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def wait_for(ready, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.25)


def exporter_answers(port: int) -> bool:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        return request(port, "GET", "/metrics", headers=headers, timeout=2)[0] == 200
    except OSError:
        return False


@pytest.fixture
def worker(tmp_path):
    """`make worker` (2 pool processes) on this test's database and Redis, its metrics at a
    free port."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "THISDB_REDIS_PREFIX": RUN_PREFIX,
        "THISDB_METRICS_TOKEN": TOKEN,
        "THISDB_WORKER_METRICS_ADDRESS": f"127.0.0.1:{port}",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    with open(tmp_path / "worker.log", "wb") as log:
        process = subprocess.Popen(
            ["make", "-s", "worker", "WORKER_ARGS=--concurrency=2 --loglevel=WARNING"],
            cwd=PROJECT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: exporter_answers(port), "the worker's metrics")
        yield port
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=60)


@pytest.mark.django_db(transaction=True)
def test_prometheus_reads_the_platforms_metrics(promtool, worker, tmp_path):
    alice = Persona("alice")
    bucket = alice.new_bucket()
    past = timezone.now() - timedelta(seconds=5)
    Item.objects.create(bucket_id=bucket, key="old", value=b"x", expires_at=past)
    key = {"X-Api-Key": alice.key}
    env = {
        "REDIS_URL": settings.REDIS_URL,
        "THISDB_REDIS_PREFIX": RUN_PREFIX,
        "THISDB_METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "WEB_WORKERS": "2",
    }
    with served(database_url(), tmp_path / "server.log", **env) as port:
        keys, reads = 40, 4 * 30

        def client(start: int) -> None:
            for i in range(start, reads, 4):
                if i < keys:
                    assert request(port, "POST", f"/v1/{bucket}/k{i}", b"v", key)[0] == 200
                assert request(port, "GET", f"/v1/{bucket}/k{i % keys}", headers=key)[0] == 200

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        time.sleep(1.1)  # a key takes one write a second
        stale = {**key, "If-Match": '"1"'}
        assert request(port, "POST", f"/v1/{bucket}/k1", b"w", stale)[0] == 412
        assert request(port, "POST", f"/v1/{bucket}/k0", b"w", key)[0] == 200
        assert request(port, "POST", f"/v1/{bucket}/k0", b"w", key)[0] == 429  # within 1 s
        # Both workers served requests, each counted in its own file. Which worker accepts a
        # connection is the kernel's choice, and on a busy machine one worker can take them all:
        # GETs on new connections go on until each has counted some (and count as reads).
        files = tmp_path / "metrics" / "web"
        wanted = {f"counter_{pid}.db" for pid in worker_pids(port)}
        deadline = time.monotonic() + 30
        while not wanted <= {p.name for p in files.iterdir()}:
            assert time.monotonic() < deadline, {p.name for p in files.iterdir()}
            assert request(port, "GET", f"/v1/{bucket}/k2", headers=key)[0] == 200
            reads += 1
            time.sleep(0.2)  # a worker writes its figures to its files every second
        assert sweep_expired_items.delay().get(timeout=60) == 1
        refresh_stored_figures.delay().get(timeout=60)

        prometheus = Prometheus(shipped_config(tmp_path, port, worker, "1s"), tmp_path / "data")
        try:
            expected = {
                f'sum(thisdb_http_requests_total{{{ITEM},method="GET",status="2xx"}})': reads,
                f'sum(thisdb_http_requests_total{{{ITEM},method="POST",status="2xx"}})': keys + 1,
                f'sum(thisdb_http_requests_total{{{ITEM},method="POST",status="4xx"}})': 2,
                f'sum(thisdb_http_request_duration_seconds_count{{{ITEM},method="GET"}})': reads,
                'sum(thisdb_api_operations_total{operation="get",result="ok"})': reads,
                'sum(thisdb_api_operations_total{operation="set",result="precondition_failed"})': 1,
                'sum(thisdb_api_operations_total{operation="set",result="rate_limited"})': 1,
                'sum(thisdb_rate_limited_total{reason="key_writes"})': 1,
                f"thisdb_celery_task_runs_total{{{SWEEP}}}": 1,
                f"thisdb_celery_task_duration_seconds_count{{{SWEEP}}}": 1,
                'thisdb_swept_rows_total{kind="items"}': 1,
                "thisdb_keys": keys,
                "thisdb_buckets": 1,
                "thisdb_accounts": 1,
                "thisdb_postgresql_up": 1,
                "thisdb_redis_up": 1,
                'up{job="thisdb-worker"}': 1,
                'up{job="thisdb-web"}': 1,
                # Each web worker's pool holds a connection at least (the pool's minimum).
                "sum(thisdb_database_pool_connections) >= 2": None,
                # The tasks sent here count as beat's (thisdb_site.celery records every send).
                "time() - thisdb_beat_last_sent_timestamp_seconds < 120": None,
            }

            def values() -> dict:
                return {expr: prometheus.query(expr) for expr in expected}

            def all_read() -> bool:
                got = values()
                return all(
                    got[expr] == want if want is not None else got[expr] is not None
                    for expr, want in expected.items()
                )

            try:
                wait_for(all_read, "Prometheus to read every expected value", timeout=45)
            except AssertionError:
                raise AssertionError(values()) from None
        finally:
            prometheus.stop()
