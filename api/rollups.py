"""Usage figures: requests per API key per hour, and what each bucket and account stores.

Requests are counted in Redis on the request path (api.limits); beat copies the counters into
PostgreSQL every minute and drops the counters of hours that have ended. Without Redis (the
embedded default) the counters live in the process that serves the API, which adds them to the
same table itself every THISDB_LOCAL_ROLLUP_SECONDS. Stored figures are recounted from the items
every minute, so quotas on keys and bytes can be enforced on the request path without a second
SQL statement.
"""

import logging
import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection, connections
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
    counters are deleted only after its rows are written, so two runs leave what one run leaves.
    Returns the number of rows written.
    """
    limiter = limits.limiter()
    if isinstance(limiter, limits.MemoryLimiter):
        # Counters of this process only: a worker's are empty, the web process rolls up its own.
        return roll_up_in_process(limiter, now)
    client = limiter.client
    current = limits.hour_start(now)
    written = 0
    for hour in (current - i * limits.HOUR for i in range(HOURS_KEPT + 1)):
        figures = limits.hour_counts(hour)
        if not figures:
            continue
        by_key = {key_id: n for (_, key_id), n in figures.items()}
        existing = set(ApiKey.objects.filter(pk__in=by_key).values_list("pk", flat=True))
        rows = [
            UsageHour(api_key_id=i, hour=datetime.fromtimestamp(hour, UTC), requests=n)
            for i, n in by_key.items()
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
            # The hour is over and its figures are in PostgreSQL: reset its counters, an
            # account at a time (each account's keys share a Redis Cluster slot).
            for user_id in {user for user, _ in figures}:
                names = [limits.counter_key(user_id, i, hour) for u, i in figures if u == user_id]
                client.delete(limits.hour_keys_key(user_id, hour), *names)
            client.delete(limits.hour_accounts_key(hour))
    return written


_ADD_REQUESTS_SQL = (
    f"INSERT INTO {UsageHour._meta.db_table} (api_key_id, hour, requests) VALUES (%s, %s, %s) "
    f"ON CONFLICT (api_key_id, hour) DO UPDATE "
    f"SET requests = {UsageHour._meta.db_table}.requests + excluded.requests"
)


def roll_up_in_process(limiter: limits.MemoryLimiter, now: float) -> int:
    """Add to UsageHour what this process's counters (no Redis) counted since the last run.

    Added, never set: each process counts only its own requests, so the rows stay right when
    several processes run without Redis (thisdb.W002 warns of that setup). A row is added to in
    one atomic upsert, and marked as added only once written, so a failed run is made up by the
    next. Returns the number of rows written.
    """
    current = limits.hour_start(now)
    oldest = current - HOURS_KEPT * limits.HOUR
    written = 0
    with limiter.roll_up_lock:  # one run at a time per process
        for hour in range(oldest, current + 1, limits.HOUR):
            counted = {key_id: n for (_, key_id), n in (limits.hour_counts(hour) or {}).items()}
            new = {
                key_id: n - limiter.rolled_up.get((key_id, hour), 0)
                for key_id, n in counted.items()
                if n > limiter.rolled_up.get((key_id, hour), 0)
            }
            if not new:
                continue
            existing = set(ApiKey.objects.filter(pk__in=new).values_list("pk", flat=True))
            started = datetime.fromtimestamp(hour, UTC)
            for key_id, requests in new.items():
                if key_id in existing:  # a key deleted meanwhile has no row to count into
                    with connection.cursor() as cursor:
                        cursor.execute(
                            _ADD_REQUESTS_SQL,
                            [key_id, connection.ops.adapt_datetimefield_value(started), requests],
                        )
                    written += 1
                limiter.rolled_up[(key_id, hour)] = counted[key_id]
        # The counters of older hours have expired: forget what was added from them.
        limiter.rolled_up = {k: n for k, n in limiter.rolled_up.items() if k[1] >= oldest}
    return written


def keep_rolling_up(limiter: limits.MemoryLimiter) -> None:
    """The embedded default's roll-up: in the process whose counters they are (no worker can see
    them), every THISDB_LOCAL_ROLLUP_SECONDS, until the limiter is replaced. Hours that end are
    rolled up by the same runs, so their figures outlive the counters."""
    while True:
        time.sleep(settings.THISDB_LOCAL_ROLLUP_SECONDS)
        if not limits.is_current(limiter):
            return
        try:
            roll_up_in_process(limiter, time.time())
        except Exception:
            log.exception("could not add the request counters to the usage table")
        finally:
            connections.close_all()  # this thread's own connections


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
