from allauth.account import views as allauth_views
from allauth.mfa.base import views as mfa_views
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts import views as account_views
from accounts.ratelimits import codes_limited, limited, login_limited
from thisdb_site import views as site_views
from thisdb_site.metrics import metrics_view

# Anything that fails outside a view: a 503 when it is the database (in the API's format on /v1/).
handler500 = "thisdb_site.views.server_error"

urlpatterns = [
    path("", include("api.urls")),
    # The pages people use are dashboard's, included by name: the site imports no app's pages.
    path("", include("dashboard.home_urls")),
    path("healthz", site_views.healthz, name="healthz"),
    path("readyz", site_views.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),  # Prometheus, with THISDB_METRICS_TOKEN
    # The forms people guess at, limited per address, per email and per user
    # (accounts.ratelimits); the same paths as allauth's own, matched first.
    path("accounts/login/", login_limited(allauth_views.login)),
    path("accounts/signup/", limited("signup", allauth_views.signup)),
    path("accounts/password/reset/", limited("reset", allauth_views.password_reset)),
    path("accounts/2fa/authenticate/", codes_limited(mfa_views.authenticate)),
    path("accounts/2fa/reauthenticate/", codes_limited(mfa_views.reauthenticate)),
    path("accounts/confirm-email/", account_views.VerificationSentView.as_view()),
    path("accounts/", include("allauth.urls")),
    path("", include("accounts.urls")),
    path("", include("dashboard.account_urls")),
    path("", include("dashboard.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file: the pages' CSP allows no inline script.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="schema", template_name="docs/swagger_ui.html"
        ),
        name="api-docs",
    ),
    path("admin/", admin.site.urls),
]
