"""System checks for configuration that works but is dangerous (ids thisdb.*)."""

from django.conf import settings
from django.core.checks import Tags, Warning, register

INSECURE_SECRET_KEY = "insecure-embedded-default-set-SECRET_KEY-in-production"


@register(Tags.security, deploy=True)
def check_secret_key(app_configs, **kwargs):
    if settings.SECRET_KEY == INSECURE_SECRET_KEY:
        return [
            Warning(
                "SECRET_KEY is the embedded default, which anyone can read in the source.",
                hint="Set the SECRET_KEY environment variable to a long random string.",
                id="thisdb.W001",
            )
        ]
    return []


@register()
def check_shared_limits(app_configs, **kwargs):
    return shared_limits_warnings(settings.DATABASES["default"]["ENGINE"], settings.REDIS_URL)


def shared_limits_warnings(engine: str, redis_url: str) -> list:
    # With a real database but no Redis, each process keeps its own rate-limit counters, so the
    # hourly limit and the one-write-per-second rule are multiplied by the number of workers.
    if engine.endswith("postgresql") and not redis_url:
        return [
            Warning(
                "PostgreSQL is configured but REDIS_URL is not: rate limits are counted per "
                "process, not for the whole platform.",
                hint="Set REDIS_URL (e.g. redis://127.0.0.1:6379/0).",
                id="thisdb.W002",
            )
        ]
    return []


CSRF_MIDDLEWARE = "thisdb_site.middleware.CsrfViewMiddleware"


@register(Tags.security, deploy=True)
def check_csrf(app_configs, **kwargs):
    """Django's security.W003 and W016, for our CSRF middleware (which steps aside for /v1/ and
    which Django's own checks do not recognise: they are silenced in settings)."""
    if CSRF_MIDDLEWARE not in settings.MIDDLEWARE:
        return [
            Warning(
                f"The web pages have no CSRF protection: {CSRF_MIDDLEWARE} is not in MIDDLEWARE.",
                hint="Put it back in MIDDLEWARE (settings.py).",
                id="thisdb.W003",
            )
        ]
    if not settings.CSRF_COOKIE_SECURE:
        return [
            Warning(
                "CSRF_COOKIE_SECURE is off, so the CSRF cookie may travel over plain HTTP.",
                hint="Serve the platform over HTTPS and set SECURE_COOKIES=true.",
                id="thisdb.W016",
            )
        ]
    return []
