"""REDIS_CLUSTER's settings refuse at start-up what cannot work, saying what to set."""

import os
import subprocess
import sys

import pytest

from tests.serving import PLATFORM_SETTINGS, PROJECT


def start(**environment: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in PLATFORM_SETTINGS}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT,
        env={**env, **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        (
            {"REDIS_CLUSTER": "true", "REDIS_URL": "redis://127.0.0.1:7101"},
            "REDIS_CLUSTER is true but CELERY_BROKER_URL is not set: Celery cannot use a Redis "
            "Cluster as its broker",
        ),
        ({"REDIS_CLUSTER": "true"}, "REDIS_CLUSTER is true but REDIS_URL is not set"),
        ({"REDIS_CLUSTER": "cluster"}, "REDIS_CLUSTER must be true or false, not 'cluster'"),
    ],
)
def test_a_cluster_without_what_it_needs_refuses_to_start(environment, message):
    done = start(**environment)
    assert done.returncode != 0
    assert message in done.stderr


def test_a_cluster_with_its_own_broker_starts():
    done = start(
        REDIS_CLUSTER="true",
        REDIS_URL="redis://127.0.0.1:7101",
        CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//",
    )
    assert done.returncode == 0, done.stderr
