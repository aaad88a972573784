"""Celery on the embedded default: no Redis, kombu's filesystem transport, a SQLite file."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serving import PLATFORM_SETTINGS

PROJECT = Path(__file__).resolve().parents[1]
CELERY = str(Path(sys.executable).with_name("celery"))

# Made in the second process: one expired key and one live one, then the sweep sent to the
# worker through the filesystem broker; prints what the task answered and the keys left.
SCRIPT = """
import django
django.setup()
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from api.models import Bucket, Item
from api.tasks import sweep_expired_items

user = get_user_model().objects.create_user("erin")
bucket = Bucket.objects.create(owner=user)
now = timezone.now()
Item.objects.create(bucket=bucket, key="dead", value=b"x", expires_at=now - timedelta(seconds=1))
Item.objects.create(bucket=bucket, key="live", value=b"y", expires_at=now + timedelta(hours=1))
print(sweep_expired_items.delay().get(timeout=60))
print(sorted(Item.objects.values_list("key", flat=True)))
"""


@pytest.fixture
def embedded_env(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in PLATFORM_SETTINGS and not k.startswith("THISDB_")
    }
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    env["THISDB_CELERY_DIR"] = str(tmp_path / "celery")
    env["DJANGO_SETTINGS_MODULE"] = "thisdb_site.settings"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=PROJECT, env=env, check=True
    )
    return env


def test_a_worker_on_the_filesystem_broker_runs_the_sweep(embedded_env):
    worker = subprocess.Popen(
        [CELERY, "-A", "thisdb_site", "worker", "--pool=solo", "--loglevel=WARNING"],
        cwd=PROJECT,
        env=embedded_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT],
            cwd=PROJECT,
            env=embedded_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["1", "['live']"]
