"""Beat expires API keys: a real Celery worker revokes keys past their expiry and emails each
owner once, a week before. Run twice, it changes nothing more."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from accounts import expiry, tasks
from accounts.models import ApiKey
from api import lifecycle
from tests.api.test_tasks import TASK_TIMEOUT, worker  # noqa: F401 (the worker fixture)
from tests.conftest import Persona

pytestmark = pytest.mark.django_db(transaction=True)


def key_expiring_in(person, delta: timedelta, name: str) -> ApiKey:
    api_key, _ = ApiKey.objects.create_key(person.user, name=name, expires_in_days=30)
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() + delta)
    api_key.refresh_from_db()
    return api_key


def test_the_worker_revokes_expired_keys_and_warns_once(worker):  # noqa: F811
    carol = Persona("carol")
    gone = key_expiring_in(carol, -timedelta(minutes=5), "gone")
    soon = key_expiring_in(carol, timedelta(days=3), "soon")
    later = key_expiring_in(carol, timedelta(days=20), "later")

    result = tasks.expire_api_keys.delay().get(timeout=TASK_TIMEOUT)

    assert result == {"revoked": 1, "warned": 1}
    gone.refresh_from_db()
    assert gone.revoked_at == gone.expires_at  # revoked as of its expiry
    assert ApiKey.objects.get(pk=soon.pk).revoked_at is None
    assert ApiKey.objects.get(pk=later.pk).expiry_warned_at is None
    warnings = [m for m in mail.outbox if "soon" in m.subject]
    assert len(warnings) == 1
    assert warnings[0].to == [carol.email]
    assert soon.display_prefix in warnings[0].body
    assert "/keys/" in warnings[0].body

    # Again: nothing more to revoke, nobody is emailed twice.
    assert tasks.expire_api_keys.delay().get(timeout=TASK_TIMEOUT) == {"revoked": 0, "warned": 0}
    assert len([m for m in mail.outbox if "soon" in m.subject]) == 1


def test_a_revoked_or_never_expiring_key_is_not_warned(db):
    dave = Persona("dave")
    revoked = key_expiring_in(dave, timedelta(days=2), "revoked")
    lifecycle.revoke_api_key(revoked)
    assert expiry.warn_expiring(timezone.now()) == 0  # the persona's own key never expires
    assert mail.outbox == []


def test_a_failed_email_is_tried_again_next_run(db, settings):
    erin = Persona("erin")
    key_expiring_in(erin, timedelta(days=1), "soon")
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 1
    assert expiry.warn_expiring(timezone.now()) == 0  # nobody listens on port 9
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert expiry.warn_expiring(timezone.now()) == 1
    assert len(mail.outbox) == 1
