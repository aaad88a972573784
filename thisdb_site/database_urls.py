"""DATABASE_URL and DATABASE_REPLICA_URL as Django's DATABASES entries.

dj-database-url reads every form but libpq's multi-host one
(`postgres://user@host1:5432,host2:5433/db?target_session_attrs=read-write`): urllib refuses a
netloc with several ports. That form is parsed by psycopg, which asks libpq itself, so it means
exactly what it means to psql; Django hands HOST and PORT to libpq as the lists they are.
"""

from typing import Any
from urllib.parse import urlsplit

import dj_database_url

POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql")


def parse(url: str, **options: Any) -> dict[str, Any]:
    """Django's settings for one database URL; `options` as dj_database_url.parse takes them."""
    parts = urlsplit(url)
    if parts.scheme in POSTGRES_SCHEMES and "," in parts.netloc:
        return _multi_host(url, **options)
    return dict(dj_database_url.parse(url, **options))


def _multi_host(url: str, conn_max_age: int = 0, conn_health_checks: bool = False) -> dict:
    from psycopg.conninfo import conninfo_to_dict

    params = {key: str(value) for key, value in conninfo_to_dict(url).items()}
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": params.pop("dbname", ""),
        "USER": params.pop("user", ""),
        "PASSWORD": params.pop("password", ""),
        "HOST": params.pop("host", ""),  # "h1,h2": libpq tries each in turn
        "PORT": params.pop("port", ""),  # "5432,5433" (or one for all; empty: the default)
        "OPTIONS": params,  # target_session_attrs, sslmode, connect_timeout...
        "CONN_MAX_AGE": conn_max_age,
        "CONN_HEALTH_CHECKS": conn_health_checks,
    }
