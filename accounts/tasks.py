"""Celery tasks of accounts: thin wrappers over accounts.expiry (which the tests call too)."""

from typing import TypedDict

from celery import shared_task
from django.utils import timezone

from accounts import expiry


class TaskOptions(TypedDict):
    acks_late: bool
    soft_time_limit: int
    time_limit: int


TASK_OPTIONS: TaskOptions = {"acks_late": True, "soft_time_limit": 50, "time_limit": 55}


@shared_task(**TASK_OPTIONS)
def expire_api_keys() -> dict:
    """Revoke expired API keys and warn owners of keys expiring within a week; idempotent."""
    now = timezone.now()
    return {"revoked": expiry.revoke_expired(now), "warned": expiry.warn_expiring(now)}
