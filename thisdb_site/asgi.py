"""The application `make serve` runs under granian: Django's WSGI application behind an ASGI
front that keeps slow clients away from it.

Django is synchronous here (its ORM and our views), so each request it serves takes a thread and,
while it talks to PostgreSQL, a pooled connection. The front keeps both bounded:

- A request's body is read in full on the event loop before Django sees the request, within
  THISDB_BODY_TIMEOUT seconds (408 after that) and up to the largest body the platform takes: a
  client that uploads one byte every two seconds costs a coroutine, never a thread or a
  connection.
- Django then runs in one of THISDB_WEB_THREADS threads of this process (other requests wait
  their turn on the event loop), and its whole answer is taken before it is sent, so a client
  that reads slowly does not hold a thread either.
- Bulk transfers are the exception (thisdb_site.streams): an export's answer and an NDJSON or
  JSON-array import's body can be any size, so they are streamed, in constant memory, in one of
  THISDB_BULK_THREADS threads of their own (a 503 past them), never in the threads above;
  with THISDB_BULK=false there are none, and such requests are read and answered as any other.

Slow request heads are the server's to refuse (granian's --http1-header-read-timeout).
Django runs through its WSGI handler, not its ASGI one: the ASGI handler starts a thread for
each request and hops between threads several times in it, about four times the cost here.
"""

import gc
import os
from importlib import import_module

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "thisdb_site.settings")

from django.conf import settings  # noqa: E402  (after the settings module is named)
from django.core.wsgi import get_wsgi_application  # noqa: E402

from thisdb_site.front import BufferedWSGI  # noqa: E402

django_application = get_wsgi_application()  # sets Django up: the apps' modules may load now

from api.watchhub import hub  # noqa: E402
from api.watching import PLAN_HEADER  # noqa: E402

application = BufferedWSGI(
    django_application,
    # The largest body the platform takes (a 10 MiB transaction; a 1 MiB value, plus room for
    # a form's fields); one byte more and the API answers 413 itself.
    max_body=max(settings.DATA_UPLOAD_MAX_MEMORY_SIZE, settings.THISDB_TRANSACTION_MAX_BYTES),
    body_timeout=settings.THISDB_BODY_TIMEOUT,
    threads=settings.THISDB_WEB_THREADS,
    # Exports and streamed imports, which can last minutes, in threads of their own.
    bulk_threads=settings.THISDB_BULK_THREADS,
    bulk=settings.THISDB_BULK,  # false: no exports or imports, nothing streamed
    # Watch streams leave Django once opened and live on the event loop (api.watchhub).
    takeovers={PLAN_HEADER.lower().encode(): hub.serve},
    # The hub listens from the worker's start, not from its first watch: a worker that serves
    # no watch must still hear which buckets the others watch, or its writes would not wake
    # them (api.notify) and their watchers would wait for the next poll.
    on_startup=hub.start,
    # Its own answers (408, 400, a bulk transfer's 503) logged as Django's are.
    log_requests=settings.THISDB_LOG_FORMAT == "json",
    proxy_count=settings.THISDB_PROXY_COUNT,
)

# The URLconf and the views it imports, now rather than at the first request: a broken one stops
# the server here, and their objects are then loaded for the freeze below.
import_module(settings.ROOT_URLCONF)
# What is loaded by now (about 110,000 objects: Django, DRF, the apps) lives as long as the worker.
# Frozen, the garbage collector never scans it again: a full collection took 60 ms or more with
# it, and holds the GIL, so every request of the worker waited that long (bench/NOTES.md).
gc.freeze()
