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


@register()
def check_pool_size(app_configs, **kwargs):
    return pool_size_warnings(
        settings.DATABASE_POOL_SIZE, settings.THISDB_WEB_THREADS, settings.THISDB_BULK_THREADS
    )


def pool_size_warnings(pool_size: int, web_threads: int, bulk_threads: int) -> list:
    # An export holds its connection for as long as it is sent (its snapshot): with fewer
    # connections than threads, exports running leave normal requests waiting for one (503s).
    if 0 < pool_size < web_threads + bulk_threads:
        return [
            Warning(
                f"DATABASE_POOL_SIZE ({pool_size}) is smaller than THISDB_WEB_THREADS + "
                f"THISDB_BULK_THREADS ({web_threads} + {bulk_threads}): while exports and "
                "imports hold their connections, normal requests may wait for one.",
                hint="Leave DATABASE_POOL_SIZE unset (it follows both), or raise it.",
                id="thisdb.W003",
            )
        ]
    return []
