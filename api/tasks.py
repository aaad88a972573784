"""Celery tasks: thin wrappers over plain functions (which the tests also call directly).

Each is idempotent (running it twice leaves the state one run leaves) and has a time limit;
acks_late because re-running after a worker crash is safe.
"""

import time

from celery import shared_task
from django.utils import timezone

from api import history, rollups, statements
from thisdb_site.celery import TASK_OPTIONS


@shared_task(**TASK_OPTIONS)
def sweep_expired_items() -> int:
    return statements.sweep_expired_items(timezone.now())


@shared_task(**TASK_OPTIONS)
def sweep_history() -> int:
    return history.sweep(timezone.now())


@shared_task(**TASK_OPTIONS)
def sweep_expired_tokens() -> int:
    return statements.sweep_expired_tokens(timezone.now())


@shared_task(**TASK_OPTIONS)
def roll_up_usage() -> int:
    return rollups.roll_up_requests(time.time())


@shared_task(**TASK_OPTIONS)
def refresh_stored_figures() -> None:
    rollups.refresh_stored_figures(timezone.now())
