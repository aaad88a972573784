"""The beat tasks, run by a real Celery worker on the real Redis broker."""

from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import connection
from django.utils import timezone

from accounts.models import UsageHour
from api import statements, tasks
from api.models import Item, Token
from tests.conftest import RUN_PREFIX, Persona
from thisdb_site.celery import app

TASK_TIMEOUT = 300  # seconds; the 100,000-row sweep takes about a second here

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker():
    """A worker thread consuming a queue of this test run's own (so no other worker takes our
    tasks), on the broker and result backend of settings (Redis in CI)."""
    app.conf.task_default_queue = RUN_PREFIX
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30) as w:
        yield w
    connection.close()


def fill(bucket: str, count: int, expired_every: int) -> None:
    """`count` keys; every `expired_every`-th one expired a minute ago, the rest live for an
    hour or forever. One INSERT ... SELECT, so 100,000 rows take well under a second."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO api_item (bucket_id, key, value, expires_at, updated_at) "
            "SELECT %s, 'k' || lpad(i::text, 6, '0'), 'v'::bytea, "
            "CASE WHEN i %% %s = 0 THEN %s::timestamptz "
            "WHEN i %% 3 = 0 THEN NULL ELSE %s::timestamptz END, %s "
            "FROM generate_series(1, %s) AS i",
            [
                bucket,
                expired_every,
                now - timedelta(minutes=1),
                now + timedelta(hours=1),
                now,
                count,
            ],
        )


def test_the_worker_sweeps_exactly_the_expired_half_of_100000_keys(worker):
    assert connection.vendor == "postgresql"
    carol = Persona("carol")
    bucket = carol.new_bucket()
    fill(bucket, 100_000, expired_every=2)
    live_before = set(
        Item.objects.filter(bucket_id=bucket)
        .exclude(expires_at__lte=timezone.now())
        .values_list("key", flat=True)
    )
    assert len(live_before) == 50_000

    deleted = tasks.sweep_expired_items.delay().get(timeout=TASK_TIMEOUT)

    assert deleted == 50_000
    remaining = set(Item.objects.filter(bucket_id=bucket).values_list("key", flat=True))
    assert remaining == live_before

    assert tasks.sweep_expired_items.delay().get(timeout=TASK_TIMEOUT) == 0  # twice: no change
    assert set(Item.objects.filter(bucket_id=bucket).values_list("key", flat=True)) == remaining


def test_the_sweep_works_in_batches_and_never_touches_live_keys(db):
    carol = Persona("carol")
    bucket = carol.new_bucket()
    fill(bucket, 1_000, expired_every=4)
    assert statements.sweep_expired_items(timezone.now(), batch=100) == 250
    assert Item.objects.filter(bucket_id=bucket).count() == 750
    assert not Item.objects.filter(expires_at__lte=timezone.now()).exists()


def test_the_worker_sweeps_expired_tokens(worker):
    carol = Persona("carol")
    bucket = carol.new_bucket()
    live = carol.token(bucket, "a")
    carol.token(bucket, "b")
    Token.objects.filter(prefix="b").update(expires_at=timezone.now() - timedelta(seconds=1))

    assert tasks.sweep_expired_tokens.delay().get(timeout=TASK_TIMEOUT) == 1
    assert tasks.sweep_expired_tokens.delay().get(timeout=TASK_TIMEOUT) == 0
    assert list(Token.objects.values_list("prefix", flat=True)) == ["a"]
    from tests.conftest import token_client

    assert token_client(live).get(f"/v1/{bucket}/a").status_code == 404  # works: no such key


def test_the_worker_rolls_up_usage_and_refreshes_figures(worker):
    carol = Persona("carol")
    bucket = carol.new_bucket()
    carol.set(bucket, "k", "value")

    assert tasks.roll_up_usage.delay().get(timeout=TASK_TIMEOUT) == 1
    assert tasks.roll_up_usage.delay().get(timeout=TASK_TIMEOUT) == 1  # same row, same figure
    assert UsageHour.objects.get(api_key=carol.api_key).requests == 2

    tasks.refresh_stored_figures.delay().get(timeout=TASK_TIMEOUT)
    assert carol.user.buckets.get().key_count == 1


def test_every_task_has_a_time_limit_and_acks_late():
    for task in (
        tasks.sweep_expired_items,
        tasks.sweep_expired_tokens,
        tasks.roll_up_usage,
        tasks.refresh_stored_figures,
    ):
        assert task.time_limit and task.soft_time_limit and task.acks_late


def test_beat_schedules_every_task():
    from django.conf import settings

    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert scheduled == {
        "api.tasks.sweep_expired_items",
        "api.tasks.sweep_history",
        "api.tasks.sweep_expired_tokens",
        "api.tasks.roll_up_usage",
        "api.tasks.refresh_stored_figures",
        "accounts.tasks.expire_api_keys",
        "accounts.tasks.prune_security_events",
    }
