"""A server candidate for `make bench`: the product under Django's own ASGI handler (each
request's view runs in a thread of asgiref's), to compare with thisdb_site.asgi's front."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "thisdb_site.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
