"""The floor under the product's own front (thisdb_site.asgi.BufferedWSGI) and server."""

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "bench.floor.settings"

from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from thisdb_site.front import BufferedWSGI  # noqa: E402

application = BufferedWSGI(
    get_wsgi_application(),
    max_body=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
    body_timeout=settings.THISDB_BODY_TIMEOUT,
    threads=settings.THISDB_WEB_THREADS,
)
