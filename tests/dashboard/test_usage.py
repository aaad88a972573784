"""The usage page: requests per hour (48 h) and per day (30 days), per API key and in total, from
the rolled-up table and, for the current hour, live from Redis; quota meters with the plan."""

import re
from datetime import UTC, datetime, timedelta

from accounts.models import Account, ApiKey, Plan, UsageHour
from api.models import Bucket


def this_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def hour_tip(hour: datetime) -> str:
    """What a bar of the hourly chart says of its hour, in UTC."""
    return f"{hour.day} {hour:%b}, {hour:%H}:00–{hour + timedelta(hours=1):%H}:00 UTC"


def bar_titles(svg_html: str) -> list[str]:
    return re.findall(r"<title>([^<]*)</title>", svg_html)


def test_hourly_and_daily_figures_from_the_table_and_live(alice, bob, bucket):
    other, _ = ApiKey.objects.create_key(alice.user, name="worker")
    UsageHour.objects.create(
        api_key=alice.api_key, hour=this_hour() - timedelta(hours=5), requests=70
    )
    UsageHour.objects.create(api_key=other, hour=this_hour() - timedelta(hours=5), requests=30)
    UsageHour.objects.create(api_key=other, hour=this_hour() - timedelta(days=10), requests=500)
    UsageHour.objects.create(api_key=bob.api_key, hour=this_hour(), requests=9999)  # not alice's
    for _ in range(3):
        alice.client.get(f"/v1/{bucket}")  # live in Redis; the persona made one more request

    html = alice.browser.get("/usage/").content.decode()

    titles = bar_titles(html)
    five_ago = f"{hour_tip(this_hour() - timedelta(hours=5))}: 100 requests"
    assert five_ago in titles  # alice's two keys together
    assert f"{hour_tip(this_hour())}: 4 requests so far" in titles
    ten_days = this_hour() - timedelta(days=10)
    assert f"{ten_days.day} {ten_days:%b} (UTC): 500 requests" in titles
    assert "9,999" not in html
    # Per key too: each key's own chart.
    hour = hour_tip(this_hour() - timedelta(hours=5))
    assert f"{hour}: 70 requests" in titles and f"{hour}: 30 requests" in titles
    assert "worker" in html


def test_quota_meters_show_used_and_allowed_with_the_plan(alice, bucket):
    plan = Plan.objects.create(name="pro", requests_per_hour=5000, max_buckets=10)
    Account.objects.filter(user=alice.user).update(plan=plan, stored_bytes=2048)
    Bucket.objects.filter(pk=bucket).update(key_count=77)
    alice.client.get(f"/v1/{bucket}")

    html = alice.browser.get("/usage/").content.decode()

    assert "pro plan" in html
    assert re.search(r"Requests this hour.*?\b2 / 5,000", html, re.S)
    assert re.search(r"Buckets.*?\b1 / 10\b", html, re.S)
    assert re.search(r"Keys in the largest bucket.*?\b77 / 100,000", html, re.S)
    assert re.search(r"Stored bytes.*?2.0\xa0KB / 1.0\xa0GB", html, re.S)
    assert '<meter min="0" max="5000" value="2"' in html


def test_the_charts_are_svg_without_script(alice):
    html = alice.browser.get("/usage/").content.decode()
    assert html.count('<svg class="chart"') >= 2
    assert "<script>" not in html
