"""Usage figures for the usage page and the staff overview: requests per hour and per day from
the table beat rolls up (accounts.UsageHour), the current hour live from Redis, and quota meters.
"""

from datetime import UTC, datetime, timedelta

from django.db.models import Count, Max, Sum

from accounts.models import Account, ApiKey, UsageHour, plan_name
from accounts.quotas import platform_defaults
from api import limits
from api.models import Bucket
from dashboard import figures as bucket_figures
from dashboard.charts import Bar, bar_chart
from thisdb_site.routers import replica_reads

HOURS = 48  # hourly chart: the last two days
DAYS = 30  # daily chart: the last month


def _hour_starts(now: datetime) -> list[datetime]:
    current = now.replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=i) for i in range(HOURS - 1, -1, -1)]


def _day_starts(now: datetime) -> list[datetime]:
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return [today - timedelta(days=i) for i in range(DAYS - 1, -1, -1)]


@replica_reads()  # a month of hourly rows: the replica's, if there is one
def series(
    key_ids: list[int] | None, now: datetime | None = None, user_id: int | None = None
) -> dict:
    """Hourly and daily request figures of the given API keys of account `user_id` (None: every
    key, in total only), per key and in total. The current hour takes the larger of the live
    counter and the rolled-up row (the roll-up runs every minute, the counter is exact now)."""
    now = now or datetime.now(UTC)
    hours, days = _hour_starts(now), _day_starts(now)
    current = hours[-1]
    rows = UsageHour.objects.filter(hour__gte=min(days[0], hours[0]))
    if key_ids is not None:
        rows = rows.filter(api_key_id__in=key_ids)
    # (key, hour) -> requests, built in one pass over the rows
    figures: dict[tuple[int, datetime], int] = {}
    if key_ids is None:  # every key: PostgreSQL sums, one row per hour
        summed = rows.values("hour").annotate(n=Sum("requests")).values_list("hour", "n")
        figures = {(0, hour): n for hour, n in summed}
        live = limits.hour_counts(int(current.timestamp())) or {}
        figures[(0, current)] = max(figures.get((0, current), 0), sum(live.values()))
    else:
        for key_id, hour, requests in rows.values_list("api_key_id", "hour", "requests"):
            figures[(key_id, hour)] = requests
        assert user_id is not None, "an account's keys live under its id in Redis"
        for key_id, count in limits.current_counts(user_id, key_ids, now.timestamp()).items():
            figures[(key_id, current)] = max(figures.get((key_id, current), 0), count)

    by_key: dict[int, dict[datetime, int]] = {}
    for (key_id, hour), n in figures.items():
        by_key.setdefault(key_id, {})[hour] = n

    def hourly(per_hour: dict[datetime, int]) -> list[int]:
        return [per_hour.get(hour, 0) for hour in hours]

    def daily(per_hour: dict[datetime, int]) -> list[int]:
        totals = dict.fromkeys(days, 0)
        for hour, n in per_hour.items():
            day = hour.replace(hour=0, minute=0, second=0, microsecond=0)
            if day in totals:
                totals[day] += n
        return [totals[day] for day in days]

    total: dict[datetime, int] = {}
    for per_hour in by_key.values():
        for hour, n in per_hour.items():
            total[hour] = total.get(hour, 0) + n
    return {
        "hours": hours,
        "days": days,
        "total_hourly": hourly(total),
        "total_daily": daily(total),
        "per_key": {}
        if key_ids is None
        else {k: (hourly(per_hour), daily(per_hour)) for k, per_hour in by_key.items()},
    }


def hourly_chart(hours: list[datetime], values: list[int], title: str):
    """Hours in UTC, as the figures are kept; the last one is the current hour, live."""
    last = len(hours) - 1
    bars = [
        Bar(
            "now" if i == last else f"{hour:%H}:00",
            f"{hour.day} {hour:%b}, {hour:%H}:00–{hour + timedelta(hours=1):%H}:00 UTC",
            value,
            live=i == last,
        )
        for i, (hour, value) in enumerate(zip(hours, values, strict=True))
    ]
    return bar_chart(bars, label_every=6, title=f"{title} (UTC)")


def daily_chart(days: list[datetime], values: list[int], title: str):
    last = len(days) - 1
    bars = [
        Bar(
            "today" if i == last else f"{day.day} {day:%b}",
            f"{day.day} {day:%b} (UTC)",
            value,
            live=i == last,
        )
        for i, (day, value) in enumerate(zip(days, values, strict=True))
    ]
    return bar_chart(bars, label_every=5, title=f"{title} (UTC)")


def meter(label: str, used: int, allowed: int, unit: str = "") -> dict:
    share = used / allowed if allowed else 1.0
    return {
        "label": label,
        "used": used,
        "allowed": allowed,
        "unit": unit,
        "percent": min(100, round(share * 100)),
        # <meter> turns amber past `low` and red past `high`.
        "low": allowed * 0.8,
        "high": allowed * 0.95,
    }


def for_user(user, now: datetime | None = None) -> dict:
    now = now or datetime.now(UTC)
    account = Account.objects.select_related("plan").filter(user=user).first()
    quotas = account.quotas() if account else platform_defaults()
    keys = list(ApiKey.objects.filter(user=user).order_by("revoked_at", "-created_at"))
    figures = series([k.pk for k in keys], now, user_id=user.pk)
    this_hour = {k: hourly[-1] for k, (hourly, _) in figures["per_key"].items()}
    with replica_reads():
        buckets = Bucket.objects.for_user(user.pk).aggregate(
            n=Count("pk"), largest=Max("key_count")
        )
    per_key = []
    for key in keys:
        hourly, daily = figures["per_key"].get(key.pk, ([0] * HOURS, [0] * DAYS))
        if key.status != "active" and not any(daily):
            continue  # an old key with nothing to show
        per_key.append(
            {
                "key": key,
                "this_hour": this_hour.get(key.pk, 0),
                "last_day": sum(hourly[-24:]),
                "hourly_chart": hourly_chart(figures["hours"], hourly, f"Requests per hour, {key}"),
            }
        )
    busiest = max(this_hour.values(), default=0)
    largest = buckets["largest"] or 0
    stored = account.stored_bytes if account else 0
    live_keys = sum(1 for key in keys if key.status == "active")
    return {
        "plan": plan_name(account),
        "counted_at": bucket_figures.counted_at(),  # when beat last counted keys and bytes
        "meters": [
            meter("Requests this hour (busiest API key)", busiest, quotas.requests_per_hour),
            meter("Buckets", buckets["n"] or 0, quotas.max_buckets),
            meter("Keys in the largest bucket", largest, quotas.max_keys_per_bucket),
            meter("Stored bytes", stored, quotas.max_stored_bytes, unit="bytes"),
            meter("Live API keys", live_keys, quotas.max_api_keys),
        ],
        "hourly_chart": hourly_chart(
            figures["hours"], figures["total_hourly"], "Requests per hour, all API keys"
        ),
        "daily_chart": daily_chart(
            figures["days"], figures["total_daily"], "Requests per day, all API keys"
        ),
        "total_last_hour": figures["total_hourly"][-1],
        "total_last_day": sum(figures["total_hourly"][-24:]),
        "total_last_30_days": sum(figures["total_daily"]),
        "per_key": per_key,
    }
