"""The staff console: Django's admin with an overview page, behind the platform's own login.

Staff log in on the same page as everyone (allauth's, with two-factor and the login limits of
accounts.ratelimits); the admin's own login form is never shown, so it cannot bypass either.
"""

from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import Q, Sum
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from accounts.models import Account
from api.models import Bucket
from console import health
from dashboard import usage
from thisdb_site.routers import replica_reads


class AdminSite(admin.AdminSite):
    site_header = "ThisDB staff console"
    site_title = "ThisDB staff"
    index_title = "Run the platform"
    # The admin's sidebar of every model took a quarter of a 1280 px screen from each list (the
    # people's list scrolled sideways); the index and the breadcrumbs lead everywhere it did.
    enable_nav_sidebar = False

    def login(self, request, extra_context=None):
        """Send everyone to the platform's login page (non-staff with a word why)."""
        if request.user.is_authenticated and not request.user.is_staff:
            messages.warning(request, "The staff console needs a staff account.")
        next_url = request.GET.get("next") or reverse("admin:index", current_app=self.name)
        return redirect(f"{reverse('account_login')}?{urlencode({'next': next_url})}")

    def get_urls(self):
        extra = [path("overview/", self.admin_view(self.overview), name="overview")]
        return extra + super().get_urls()

    def overview(self, request):
        now = timezone.now()
        day_ago = now - timedelta(days=1)
        users = get_user_model().objects
        series = usage.series(None)
        # Counts over every account and bucket: the replica's, if there is one.
        with replica_reads():
            buckets = Bucket.objects.aggregate(keys=Sum("key_count"))
            figures = {
                "accounts": users.count(),
                "suspended": users.filter(is_active=False).count(),
                "active_last_day": users.filter(
                    Q(last_login__gte=day_ago) | Q(api_keys__last_used_at__gte=day_ago)
                )
                .distinct()
                .count(),
                "buckets": Bucket.objects.count(),
                "keys": buckets["keys"] or 0,
                "stored_bytes": Account.objects.aggregate(n=Sum("stored_bytes"))["n"] or 0,
                "requests_last_hour": series["total_hourly"][-1],
                "requests_last_day": sum(series["total_hourly"][-24:]),
            }
        context = {
            **self.each_context(request),
            "title": "Overview",
            "figures": figures,
            "chart": usage.hourly_chart(
                series["hours"], series["total_hourly"], "Requests per hour, every account"
            ),
            "checks": [health.database(), health.redis(), *health.celery(now)],
            "tasks": health.task_table(),
        }
        return TemplateResponse(request, "admin/overview.html", context)
