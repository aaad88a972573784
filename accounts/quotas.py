"""What an account may use: its plan's figures, overridden per account by staff.

A figure left blank on the account falls back to its plan, and one left blank on the plan to the
platform default of settings (so the free plan follows THISDB_REQUESTS_PER_HOUR and friends).
"""

from dataclasses import dataclass

from django.conf import settings

FIELDS = (
    "requests_per_hour",
    "max_buckets",
    "max_keys_per_bucket",
    "max_stored_bytes",
    "max_api_keys",
    "max_watches",
)


@dataclass(frozen=True)
class Quotas:
    requests_per_hour: int
    max_buckets: int
    max_keys_per_bucket: int
    max_stored_bytes: int
    max_api_keys: int  # live ones: neither revoked nor expired
    max_watches: int  # watch streams (and long-polls) open at once


def platform_defaults() -> Quotas:
    return Quotas(
        requests_per_hour=settings.THISDB_REQUESTS_PER_HOUR,
        max_buckets=settings.THISDB_MAX_BUCKETS,
        max_keys_per_bucket=settings.THISDB_MAX_KEYS_PER_BUCKET,
        max_stored_bytes=settings.THISDB_MAX_STORED_BYTES,
        max_api_keys=settings.THISDB_MAX_API_KEYS,
        max_watches=settings.THISDB_MAX_WATCHES,
    )


def resolve(account_values, plan_values) -> Quotas:
    """Each figure from the account if set, else from the plan if set, else the default."""
    defaults = platform_defaults()
    figures = {}
    for name, own, planned in zip(FIELDS, account_values, plan_values, strict=True):
        figures[name] = (
            own if own is not None else planned if planned is not None else getattr(defaults, name)
        )
    return Quotas(**figures)
