"""Usage figures: requests per API key per hour, and what each bucket and account stores.

Requests are counted in Redis on the request path (api.limits); beat copies the counters into
PostgreSQL every minute and drops the counters of hours that have ended. Stored figures are
recounted from the items every minute, so quotas on keys and bytes can be enforced on the request
path without a second SQL statement.
"""

import logging
from datetime import UTC, datetime
from typing import cast

from django.db.models import Count, F, IntegerField, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Length

from accounts.models import Account, ApiKey, UsageHour
from api import limits
from api.models import Bucket, Item

log = logging.getLogger(__name__)

HOURS_KEPT = limits.USAGE_KEPT_SECONDS // limits.HOUR  # counters live this long past their hour
CLOSE_AFTER_SECONDS = 60  # an hour's counters are final this long after it ends


def roll_up_requests(now: float) -> int:
    """Copy the request counters of recent hours into UsageHour; drop those of ended hours.

    Idempotent: a row is set to the counter's value (never added to), and an ended hour's
    counters are deleted only after its row is written, so two runs leave what one run leaves.
    Returns the number of rows written.
    """
    limiter = limits.limiter()
    if not isinstance(limiter, limits.RedisLimiter):
        log.info("usage roll-up needs REDIS_URL: requests are not counted across processes")
        return 0
    client = limiter.client
    current = limits.hour_start(now)
    hours = [current - i * limits.HOUR for i in range(HOURS_KEPT + 1)]
    with client.pipeline(transaction=False) as pipe:
        for hour in hours:
            pipe.smembers(limits.hour_keys_key(hour))
        members = pipe.execute()
    written = 0
    for hour, key_ids in zip(hours, members, strict=True):
        if not key_ids:
            continue
        ids = sorted(int(k) for k in key_ids)
        counts = cast(list, client.mget([limits.counter_key(i, hour) for i in ids]))  # sync client
        figures = {i: int(c) for i, c in zip(ids, counts, strict=True) if c is not None}
        existing = set(ApiKey.objects.filter(pk__in=figures).values_list("pk", flat=True))
        rows = [
            UsageHour(api_key_id=i, hour=datetime.fromtimestamp(hour, UTC), requests=n)
            for i, n in figures.items()
            if i in existing  # a key deleted meanwhile has no row to count into
        ]
        # One atomic upsert per hour: INSERT ... ON CONFLICT (api_key, hour) DO UPDATE.
        UsageHour.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["api_key", "hour"],
            update_fields=["requests"],
        )
        written += len(rows)
        if hour + limits.HOUR + CLOSE_AFTER_SECONDS <= now:
            # The hour is over and its figures are in PostgreSQL: reset its counters.
            client.delete(limits.hour_keys_key(hour), *(limits.counter_key(i, hour) for i in ids))
    return written


def refresh_stored_figures(now: datetime) -> None:
    """Recount each bucket's live keys and bytes, and each account's bytes (two UPDATEs).

    Budget: a scan of the items once a minute; fine to tens of millions of keys. Quotas read
    these figures, so an account can overshoot by what it writes within about a minute.
    """
    live = Item.objects.filter(bucket=OuterRef("pk")).exclude(expires_at__lte=now)
    count = live.order_by().values("bucket").annotate(n=Count("pk")).values("n")
    size = (
        live.order_by()
        .values("bucket")
        .annotate(n=Sum(Length("key") + Length("value")))  # characters of key + bytes of value
        .values("n")
    )
    zero = Value(0, output_field=IntegerField())
    Bucket.objects.update(
        key_count=Coalesce(Subquery(count, output_field=IntegerField()), zero),
        stored_bytes=Coalesce(Subquery(size, output_field=IntegerField()), zero),
    )
    per_owner = (
        Bucket.objects.filter(owner=OuterRef("user"))
        .order_by()
        .values("owner")
        .annotate(n=Sum(F("stored_bytes")))
        .values("n")
    )
    Account.objects.update(
        stored_bytes=Coalesce(Subquery(per_owner, output_field=IntegerField()), zero)
    )
