"""Per-account quotas (buckets, keys per bucket, stored bytes) and the usage roll-up."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from accounts.models import Account, UsageHour
from api import limits, redis_clients, rollups
from api.models import Bucket, Item
from tests.conftest import Persona, token_client


def set_quota(persona: Persona, **figures) -> None:
    Account.objects.filter(user=persona.user).update(**figures)


def refresh(persona: Persona) -> None:
    """What beat does every minute, then a new request sees the figures (caches dropped)."""
    rollups.refresh_stored_figures(timezone.now())
    from api import principals, scoping

    principals.forget_all()
    scoping.forget_all()


def test_bucket_quota_refuses_at_the_boundary_and_creates_nothing(db):
    carol = Persona("carol")
    set_quota(carol, max_buckets=2)
    carol.new_bucket()
    carol.new_bucket()
    response = carol.client.post("/v1/")
    assert response.status_code == 403
    assert b"bucket quota reached: your plan allows 2 buckets" in response.content
    assert Bucket.objects.filter(owner=carol.user).count() == 2


def test_deleting_a_bucket_frees_its_slot(db):
    carol = Persona("carol")
    set_quota(carol, max_buckets=1)
    bucket = carol.new_bucket()
    carol.client.delete(f"/v1/{bucket}")
    assert carol.client.post("/v1/").status_code == 200


def test_key_quota_refuses_new_keys_but_not_existing_ones(db):
    carol = Persona("carol")
    set_quota(carol, max_keys_per_bucket=2)
    bucket = carol.new_bucket()
    carol.set(bucket, "a", "1")
    carol.set(bucket, "b", "2")
    refresh(carol)

    response = carol.set(bucket, "c", "3")
    assert response.status_code == 403
    assert b"key quota reached" in response.content
    assert carol.client.patch(f"/v1/{bucket}/d", "+1", content_type="text/plain").status_code == 403
    assert set(Item.objects.filter(bucket_id=bucket).values_list("key", flat=True)) == {"a", "b"}

    assert carol.set(bucket, "a", "changed").status_code == 200
    response = carol.client.patch(f"/v1/{bucket}/b", "+5", content_type="text/plain")
    assert response.content == b"7"


def test_key_quota_is_per_bucket(db):
    carol = Persona("carol")
    set_quota(carol, max_keys_per_bucket=1)
    full = carol.new_bucket()
    carol.set(full, "a", "1")
    other = carol.new_bucket()
    refresh(carol)
    assert carol.set(full, "b", "1").status_code == 403
    assert carol.set(other, "b", "1").status_code == 200


def test_stored_bytes_quota_refuses_writes_and_allows_deletes(db):
    carol = Persona("carol")
    set_quota(carol, max_stored_bytes=10)
    bucket = carol.new_bucket()
    carol.set(bucket, "k", "0123456789")  # 1 + 10 bytes: over the quota once counted
    refresh(carol)
    assert Account.objects.get(user=carol.user).stored_bytes == 11

    response = carol.set(bucket, "k2", "x")
    assert response.status_code == 403
    assert b"storage quota reached: your account stores 11 of 10 bytes" in response.content
    assert not Item.objects.filter(bucket_id=bucket, key="k2").exists()
    assert carol.client.patch(f"/v1/{bucket}/n", "+1", content_type="text/plain").status_code == 403

    assert carol.client.delete(f"/v1/{bucket}/k").status_code == 200
    refresh(carol)
    assert carol.set(bucket, "k2", "x").status_code == 200


def test_stored_figures_count_live_keys_only(alice, bucket):
    alice.set(bucket, "live", "abc")
    alice.set(bucket, "dead", "abcdef")
    Item.objects.filter(key="dead").update(expires_at=timezone.now() - timedelta(days=1))
    rollups.refresh_stored_figures(timezone.now())
    row = Bucket.objects.get(pk=bucket)
    assert (row.key_count, row.stored_bytes) == (1, 4 + 3)
    assert Account.objects.get(user=alice.user).stored_bytes == 7


# --- Usage roll-up ------------------------------------------------------------------------


def test_usage_rows_match_the_requests_made(alice, bob):
    bucket = alice.new_bucket()
    for i in range(6):
        alice.set(bucket, f"k{i}", "v")
    token = alice.token(bucket, "k")
    token_client(token).get(f"/v1/{bucket}/k1")  # a token's request counts for alice's key
    bob.new_bucket()

    assert rollups.roll_up_requests(time.time()) == 2
    hour = datetime.fromtimestamp(limits.hour_start(time.time()), UTC)
    assert UsageHour.objects.get(api_key=alice.api_key, hour=hour).requests == 1 + 6 + 1 + 1
    assert UsageHour.objects.get(api_key=bob.api_key, hour=hour).requests == 1


def test_roll_up_is_idempotent_and_follows_the_counter(alice, bucket):
    rollups.roll_up_requests(time.time())
    rollups.roll_up_requests(time.time())
    assert UsageHour.objects.get(api_key=alice.api_key).requests == 1

    alice.client.get(f"/v1/{bucket}")
    rollups.roll_up_requests(time.time())
    assert UsageHour.objects.get(api_key=alice.api_key).requests == 2


def test_an_ended_hour_is_kept_in_postgresql_and_its_counters_reset(alice, bucket):
    now = time.time()
    hour = limits.hour_start(now)
    later = hour + 3600 + rollups.CLOSE_AFTER_SECONDS + 1  # the hour has ended
    rollups.roll_up_requests(later)
    rollups.roll_up_requests(later)  # twice: same state

    assert UsageHour.objects.get(api_key=alice.api_key).requests == 1
    client = redis_clients.connect(django_settings.REDIS_URL)
    assert not client.exists(limits.counter_key(alice.user.pk, alice.api_key.pk, hour))
    assert not client.exists(limits.hour_keys_key(alice.user.pk, hour))
    assert not client.exists(limits.hour_accounts_key(hour))


@pytest.mark.parametrize("figure", ["max_buckets", "max_keys_per_bucket", "max_stored_bytes"])
def test_quotas_follow_the_plan_when_the_account_sets_none(db, figure):
    from accounts.models import Plan

    plan = Plan.objects.create(name="tiny", **{figure: 0})
    carol = Persona("carol")
    assert carol.client.post("/v1/").status_code == 200
    Account.objects.filter(user=carol.user).update(plan=plan)
    refresh(carol)
    if figure == "max_buckets":
        assert carol.client.post("/v1/").status_code == 403
    else:
        bucket = Bucket.objects.get(owner=carol.user).pk
        assert carol.set(bucket, "k", "v").status_code == 403
