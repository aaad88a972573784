from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "ThisDB API"

    def ready(self):
        from api import schema  # noqa: F401  (registers the OpenAPI authentication scheme)
        from thisdb_site import checks  # noqa: F401  (registers the thisdb.* system checks)
