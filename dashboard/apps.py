from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class DashboardConfig(AppConfig):
    default = True
    name = "dashboard"
    verbose_name = "Dashboard"

    def ready(self):
        from dashboard import checks  # noqa: F401  (registers the checks)


class ThisDBAdminConfig(admin_apps.AdminConfig):
    """Django's admin, as the staff console of dashboard.admin_site."""

    default = False
    default_site = "dashboard.admin_site.AdminSite"
