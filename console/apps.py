from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ConsoleConfig(AppConfig):
    """The staff's room: the admin site with its overview, the health checks it shows, the
    task heartbeats, and the admin pages of people and buckets."""

    default = True
    name = "console"
    verbose_name = "Staff console"


class ThisDBAdminConfig(admin_apps.AdminConfig):
    """Django's admin, as the staff console of console.admin_site."""

    default = False
    default_site = "console.admin_site.AdminSite"
