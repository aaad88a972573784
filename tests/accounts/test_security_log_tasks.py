"""Beat's part of the security log, run by a real Celery worker: an expired API key is logged
as expired, as of its expiry, in the transaction that revokes it; events older than
THISDB_SECURITY_LOG_DAYS are deleted, in batches, and no newer one."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import expiry, security, tasks
from accounts.models import ApiKey
from accounts.security import SecurityEvent
from tests.api.test_tasks import TASK_TIMEOUT, worker  # noqa: F401 (the worker fixture)
from tests.conftest import Persona

pytestmark = pytest.mark.django_db(transaction=True)
Kind = SecurityEvent.Kind


def test_the_worker_logs_each_expired_key_once_as_of_its_expiry(worker):  # noqa: F811
    carol, dave = Persona("carol"), Persona("dave")
    expired_at = timezone.now() - timedelta(minutes=5)
    ApiKey.objects.filter(pk__in=[carol.api_key.pk, dave.api_key.pk]).update(expires_at=expired_at)
    later, _ = ApiKey.objects.create_key(carol.user, name="later", expires_in_days=30)

    result = tasks.expire_api_keys.delay().get(timeout=TASK_TIMEOUT)

    assert result["revoked"] == 2
    for person in (carol, dave):
        [event] = security.for_user(person.user).filter(kind=Kind.KEY_EXPIRED)
        assert event.at == expired_at
        assert event.detail == {"key": person.api_key.display_prefix, "name": "test"}
        assert event.address is None and event.user_agent == ""
        assert event.description == f"API key {person.api_key.display_prefix}… (test) expired"
    assert not SecurityEvent.objects.filter(kind=Kind.KEY_EXPIRED, detail__name="later").exists()

    assert tasks.expire_api_keys.delay().get(timeout=TASK_TIMEOUT)["revoked"] == 0
    assert SecurityEvent.objects.filter(kind=Kind.KEY_EXPIRED).count() == 2


def test_expiry_works_in_batches(db):
    erin = Persona("erin")
    for n in range(4):
        ApiKey.objects.create_key(erin.user, name=f"k{n}", expires_in_days=30)
    ApiKey.objects.filter(user=erin.user).update(expires_at=timezone.now())
    assert expiry.revoke_expired(timezone.now(), batch=2) == 5
    assert not ApiKey.objects.filter(user=erin.user, revoked_at__isnull=True).exists()
    assert security.for_user(erin.user).filter(kind=Kind.KEY_EXPIRED).count() == 5


def test_the_worker_prunes_events_past_the_log_days_and_no_newer(worker, settings):  # noqa: F811
    frank = Persona("frank")
    now = timezone.now()
    days = settings.THISDB_SECURITY_LOG_DAYS
    assert days == 90
    ages = [days + 30, days + 1, days - 1, 1]
    SecurityEvent.objects.bulk_create(
        security.event(frank.user, Kind.LOGIN, at=now - timedelta(days=age)) for age in ages
    )

    assert tasks.prune_security_events.delay().get(timeout=TASK_TIMEOUT) == 2

    left = security.for_user(frank.user).filter(kind=Kind.LOGIN)
    assert sorted((now - e.at).days for e in left) == [1, days - 1]
    assert security.for_user(frank.user).filter(kind=Kind.KEY_CREATED).exists()  # today's
    assert tasks.prune_security_events.delay().get(timeout=TASK_TIMEOUT) == 0


def test_pruning_works_in_batches(db, settings):
    settings.THISDB_SECURITY_LOG_DAYS = 7
    gina = Persona("gina")
    now = timezone.now()
    SecurityEvent.objects.bulk_create(
        security.event(gina.user, Kind.LOGIN, at=now - timedelta(days=8 + n)) for n in range(5)
    )
    assert security.prune(now, batch=2, rest=0) == 5
    assert list(security.for_user(gina.user).values_list("kind", flat=True)) == [Kind.KEY_CREATED]
