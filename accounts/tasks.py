"""Celery tasks of accounts: thin wrappers over accounts.expiry and accounts.security (which the
tests call too)."""

from celery import shared_task
from django.utils import timezone

from accounts import expiry, security
from thisdb_site.celery import TASK_OPTIONS


@shared_task(**TASK_OPTIONS)
def expire_api_keys() -> dict:
    """Revoke expired API keys and warn owners of keys expiring within a week; idempotent."""
    now = timezone.now()
    return {"revoked": expiry.revoke_expired(now), "warned": expiry.warn_expiring(now)}


@shared_task(**TASK_OPTIONS)
def prune_security_events() -> int:
    """Delete security events older than THISDB_SECURITY_LOG_DAYS; idempotent."""
    return security.prune(timezone.now())
