"""The Celery app: the worker runs the tasks that beat schedules (see CELERY_BEAT_SCHEDULE)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "thisdb_site.settings")

app = Celery("thisdb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
