"""System checks for configuration that works but is dangerous (ids thisdb.*)."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def check_secret_key(app_configs, **kwargs):
    if settings.SECRET_KEY == settings.THISDB_EMBEDDED_SECRET_KEY:
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
