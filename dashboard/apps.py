from django.apps import AppConfig


class DashboardConfig(AppConfig):
    default = True
    name = "dashboard"
    verbose_name = "Dashboard"

    def ready(self):
        from dashboard import checks  # noqa: F401  (registers the checks)
