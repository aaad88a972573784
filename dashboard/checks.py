"""System checks of the dashboard's own assumptions (ids dashboard.*)."""

from django.conf import settings
from django.core.checks import Error, register

COOKIE_ENGINES = ("django.contrib.sessions.backends.signed_cookies",)


@register()
def check_session_is_server_side(app_configs, **kwargs):
    # A new token waits in the session until its one showing (dashboard.shown_once): with
    # sessions in a cookie, the secret would travel to and sit in the browser.
    if settings.SESSION_ENGINE in COOKIE_ENGINES:
        return [
            Error(
                f"SESSION_ENGINE is {settings.SESSION_ENGINE}: new tokens would be kept in a "
                "cookie until shown.",
                hint="Keep sessions server-side (the default database engine, or cached_db).",
                id="dashboard.E001",
            )
        ]
    return []
