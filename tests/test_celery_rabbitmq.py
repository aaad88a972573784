"""Celery on RabbitMQ (CELERY_BROKER_URL apart from REDIS_URL): a real worker, started as
`make worker` starts it, runs every task of beat's schedule sent through RabbitMQ, in a vhost of
this test run's own (so parallel runs never take each other's tasks or answer each other's
pings), with no result backend: nothing piles up in the broker."""

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from api.models import Item
from console.models import TaskHeartbeat
from tests.conftest import RUN_PREFIX, Persona
from tests.serving import PROJECT

CELERY = str(Path(sys.executable).with_name("celery"))
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672"  # the machine's (README, "Tests")
TASKS_SECONDS = 60  # budget: every task sent, run and recorded on a quiet machine within 10 s

pytestmark = pytest.mark.django_db(transaction=True)  # the worker must see the test's rows

# Sent from a process of its own with the platform's settings, as beat sends: each task of the
# schedule by name. Prints the result backend the settings chose.
SENDER = """
import django
django.setup()
from django.conf import settings
from thisdb_site.celery import app
for entry in settings.CELERY_BEAT_SCHEDULE.values():
    app.send_task(entry["task"])
print(app.conf.result_backend)
"""
# What the staff overview asks (console.health): how many workers answer a ping, through the
# broker too.
PING = """
import django
django.setup()
from console import health
print(health._ping_workers())
"""


def run(script: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


@pytest.fixture
def vhost():
    """A RabbitMQ vhost of this run's own, deleted afterwards with whatever it holds."""
    name = RUN_PREFIX
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        rabbitmqctl("delete_vhost", name)


def platform_env(broker_url: str) -> dict[str, str]:
    db = connection.settings_dict
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": broker_url,
        "THISDB_REDIS_PREFIX": RUN_PREFIX,
    }


def test_a_worker_on_rabbitmq_runs_every_scheduled_task_and_keeps_no_results(vhost):
    carol = Persona("carol")
    bucket = carol.new_bucket()
    now = timezone.now()
    Item.objects.create(bucket_id=bucket, key="dead", value=b"x", expires_at=now)
    Item.objects.create(bucket_id=bucket, key="live", value=b"y", expires_at=now + timedelta(1))
    env = platform_env(f"{RABBITMQ}/{vhost}")
    started = timezone.now()
    worker = subprocess.Popen(
        [CELERY, "-A", "thisdb_site", "worker", "--pool=solo", "--loglevel=WARNING"],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        result_backend = run(SENDER, env)
        scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
        deadline = time.monotonic() + TASKS_SECONDS
        while time.monotonic() < deadline:
            finished = set(
                TaskHeartbeat.objects.filter(
                    event=TaskHeartbeat.FINISHED, at__gte=started
                ).values_list("task", flat=True)
            )
            if finished >= scheduled:
                break
            time.sleep(0.5)
        answering = run(PING, env)
        queues = rabbitmqctl("list_queues", "-p", vhost, "name", "messages")
    finally:
        worker.terminate()
        _, errors = worker.communicate(timeout=30)

    assert finished >= scheduled, f"{scheduled - finished} never ran; worker said: {errors}"
    assert result_backend == "None"
    assert answering == "1"
    assert list(Item.objects.filter(bucket_id=bucket).values_list("key", flat=True)) == ["live"]
    # Each queue of the vhost (the tasks', the worker's control box and its events') and its
    # messages: all taken, and no queue of results beside them (rpc:// would add one).
    counts = dict(line.split("\t") for line in queues.strip().splitlines()[1:])
    assert counts.get("celery") == "0" and set(counts.values()) == {"0"}, counts
    worker_queues = [n for n in counts if n.endswith(".pidbox") or n.startswith("celeryev.")]
    assert sorted(counts) == sorted(["celery", *worker_queues]), counts
    assert "Traceback" not in errors
