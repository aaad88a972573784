"""Usage on the embedded default (no Redis): the process serving the API counts requests in memory
and adds them to the usage table itself, so the usage page's figures outlive the hour and the
process (no worker can see those counters)."""

import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from accounts.models import UsageHour
from api import limits, rollups
from dashboard.usage import series
from tests.conftest import Persona
from tests.serving import PLATFORM_SETTINGS
from tests.test_embedded import KEY_RE, MANAGE_PY, START_TIMEOUT_SECONDS, Server, answers, free_port

ROLLUP_SECONDS = 1  # the server's THISDB_LOCAL_ROLLUP_SECONDS here (60 by default)

# Run in a process of its own, as a page after a restart: its counters are empty, so the
# figures it prints can only come from the usage table.
FIGURES = """
from django.contrib.auth import get_user_model
from dashboard import usage
figures = usage.for_user(get_user_model().objects.get(username="embedded"))
print(figures["total_last_day"], figures["total_last_30_days"])
"""


@pytest.fixture
def embedded(tmp_path):
    """runserver on a SQLite file without Redis, with an API key; yields (server, manage)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in PLATFORM_SETTINGS and not name.startswith("THISDB_")
    }
    env["DATABASE_URL"] = f"sqlite:///{tmp_path}/db.sqlite3"
    env["THISDB_LOCAL_ROLLUP_SECONDS"] = str(ROLLUP_SECONDS)
    env["THISDB_KEY_WRITES_PER_SECOND"] = "0"

    def manage(*args):
        done = subprocess.run(
            [sys.executable, str(MANAGE_PY), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    manage("migrate", "--noinput")
    key = manage("createapikey", "embedded", "--create-user").strip().splitlines()[-1]
    assert KEY_RE.fullmatch(key), key
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "server.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(MANAGE_PY), "runserver", f"127.0.0.1:{port}", "--noreload"],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not answers(f"{base_url}/v1/"):
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "runserver did not answer within 20 s"
            time.sleep(0.2)
        yield Server(base_url, key, tmp_path / "db.sqlite3"), manage
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_requests_on_the_embedded_default_reach_the_usage_table(embedded):
    server, manage = embedded

    def figures() -> list[str]:
        return manage("shell", "-c", FIGURES).strip().splitlines()[-1].split()

    bucket = server.new_bucket()
    for n in range(5):
        assert server.call("POST", f"/v1/{bucket}/k{n}", b"v")[0] == 200
    # 6 requests: the bucket and 5 writes. Within a few roll-ups they are in the table, where
    # another process (and this one, once its counters are gone) reads them.
    deadline = time.monotonic() + 10 * ROLLUP_SECONDS + 10
    while (printed := figures()) != ["6", "6"]:
        assert time.monotonic() < deadline, f"the usage table holds {printed}, not 6 requests"
        time.sleep(ROLLUP_SECONDS)
    # More requests are added to the same rows, never counted twice.
    assert server.call("GET", f"/v1/{bucket}")[0] == 200
    deadline = time.monotonic() + 10 * ROLLUP_SECONDS + 10
    while (printed := figures()) != ["7", "7"]:
        assert time.monotonic() < deadline, f"the usage table holds {printed}, not 7 requests"
        time.sleep(ROLLUP_SECONDS)


@pytest.fixture
def in_process_limits(settings, db):
    settings.REDIS_URL = ""  # the embedded default's limiter, on this suite's PostgreSQL
    limits.reset()
    assert isinstance(limits.limiter(), limits.MemoryLimiter)
    yield limits.limiter()
    limits.reset()  # the roll-up thread sees it is no longer current and ends


def test_an_hour_that_ends_keeps_its_figures_in_the_table(in_process_limits):
    carol = Persona("carol")
    bucket = carol.new_bucket()
    for _ in range(3):
        carol.client.get(f"/v1/{bucket}")
    now = time.time()
    hour = datetime.fromtimestamp(limits.hour_start(now), UTC)

    assert rollups.roll_up_requests(now) == 1
    assert rollups.roll_up_requests(now) == 0  # nothing new: nothing added twice
    carol.client.get(f"/v1/{bucket}")
    rollups.roll_up_requests(now)
    assert UsageHour.objects.get(api_key=carol.api_key, hour=hour).requests == 5

    # The next hour: this process's new counter starts at 0, the ended hour is in the table.
    later = now + 3600
    figures = series([carol.api_key.pk], datetime.fromtimestamp(later, UTC), carol.user.pk)
    assert figures["total_hourly"][-2:] == [5, 0]
    assert sum(figures["total_daily"]) == 5
    rollups.roll_up_requests(later)
    assert UsageHour.objects.get(api_key=carol.api_key, hour=hour).requests == 5


def test_the_roll_up_thread_starts_with_the_first_counted_request(in_process_limits):
    carol = Persona("carol")
    assert in_process_limits.roll_up_thread is None
    carol.client.get(f"/v1/{carol.new_bucket()}")
    assert in_process_limits.roll_up_thread.is_alive()
    assert in_process_limits.roll_up_thread.daemon  # never holds up the process's exit
