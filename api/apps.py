from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "ThisDB API"

    def ready(self):
        from django.core.signals import request_started

        from api import (
            limits,
            rollups,
            schema,  # noqa: F401  (registers the OpenAPI authentication scheme)
        )
        from api.inputs import mark_path_not_utf8

        # Sent with the raw WSGI environ or ASGI scope, before Django builds the request.
        request_started.connect(mark_path_not_utf8, dispatch_uid="thisdb-path-not-utf8")
        from thisdb_site import checks  # noqa: F401  (registers the thisdb.* system checks)

        limits.keeper = rollups.keep_rolling_up  # the embedded default's roll-up thread
