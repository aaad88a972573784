"""A bucket's key count and bytes as the pages show them: counted now on the bucket's page up to
a cap (cheap: one range scan of the bucket's index), beat's figure with its time past it or on
the list of buckets; never a figure the page itself contradicts."""

import json
import re
from datetime import datetime

from django.db import connection
from django.utils import timezone
from psycopg import sql

from api.models import Bucket
from api.rollups import refresh_stored_figures
from console.models import TaskHeartbeat, beat
from dashboard import figures
from tests.conftest import fill_keys


def card(html: str, name: str) -> str:
    block = re.search(rf'<div class="card" id="{name}">(.*?</small>)', html, re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", block.group(1)).split())


def test_the_bucket_page_counts_its_keys_now_not_at_beats_last_count(alice, bucket):
    for n in range(15):
        alice.set(bucket, f"key{n:02}", "12345")
    assert Bucket.objects.get(pk=bucket).key_count == 0  # beat has not counted them yet
    html = alice.browser.get(f"/buckets/{bucket}/").content.decode()
    assert card(html, "key-count") == "Keys 15 counted now"
    # Bytes as the quota counts them: the key's characters and the value's bytes.
    assert card(html, "stored") == "Stored 150 bytes counted now"
    assert "Keys 1–15 of 15" in html


def test_past_the_cap_it_shows_beats_figure_with_its_time(alice, bucket):
    fill_keys(bucket, figures.COUNT_CAP + 1)
    html = alice.browser.get(f"/buckets/{bucket}/").content.decode()
    assert card(html, "key-count") == "Keys over 10,000 not counted yet (recounted every minute)"

    refresh_stored_figures(timezone.now())
    beat(figures.REFRESH_TASK, TaskHeartbeat.FINISHED)
    counted = TaskHeartbeat.objects.get().at
    html = alice.browser.get(f"/buckets/{bucket}/").content.decode()
    assert card(html, "key-count") == (
        f"Keys about 10,001 as of {counted:%H:%M} UTC (recounted every minute)"
    )
    assert "Keys 1–50</p>" in html  # no total it cannot vouch for


def plan_nodes(plan: dict) -> list[tuple[str, str | None]]:
    """(node type, relation) of every node of an EXPLAIN (FORMAT JSON) plan."""
    nodes = [(plan["Node Type"], plan.get("Relation Name"))]
    for child in plan.get("Plans", ()):
        nodes += plan_nodes(child)
    return nodes


def generic_plan(statement: str, params) -> list[tuple[str, str | None]]:
    """The plan PostgreSQL keeps for `statement` once prepared (psycopg prepares a statement
    after five runs), which does not know how many rows the bucket holds."""
    numbered = statement
    for n in range(1, len(params) + 1):
        numbered = numbered.replace("%s", f"${n}", 1)
    # PREPARE needs the parameters' types, which psycopg takes from their Python types.
    types = [
        "timestamptz" if isinstance(p, datetime) else "bigint" if isinstance(p, int) else "text"
        for p in params
    ]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE figures_probe ({', '.join(types)}) AS {numbered}")
        try:
            # EXPLAIN takes no bound parameters: the values go in as literals.
            values = sql.SQL(", ").join(sql.Literal(p) for p in params)
            explain = sql.SQL("EXPLAIN (FORMAT JSON) EXECUTE figures_probe({})").format(values)
            cursor.execute(explain.as_string(connection.connection))
            (explained,) = cursor.fetchone()
        finally:
            cursor.execute("DEALLOCATE figures_probe")
    if isinstance(explained, str):
        explained = json.loads(explained)
    return plan_nodes(explained[0]["Plan"])


def test_counting_a_bucket_up_to_the_cap_reads_its_index_range_not_the_table(alice, bucket):
    # The worst case: a small bucket beside a large one, so that a plan reading the table
    # instead of the bucket's index range would show. The generic plan (the one a prepared
    # statement keeps) must stay on the index too: without ordering by key it read the table,
    # 70 ms instead of 3 (its speed is `make bench`'s to measure, not a test's).
    fill_keys(bucket, 1_000_000)
    small = alice.new_bucket()
    fill_keys(small, figures.COUNT_CAP)
    for bucket_id, keys in ((bucket, None), (small, figures.COUNT_CAP)):
        row = Bucket.objects.get(pk=bucket_id)
        statements: list = []

        def keep(execute, statement, params, many, context, statements=statements):
            statements.append((statement, params))
            return execute(statement, params, many, context)

        with connection.execute_wrapper(keep):
            counted = figures.for_bucket(row)
        assert counted.keys == keys
        count_sql, params = next((s, p) for s, p in statements if "COUNT(" in s.upper())
        nodes = generic_plan(count_sql, params)
        assert ("Seq Scan", "api_item") not in nodes, nodes
        assert any("Index" in kind and relation == "api_item" for kind, relation in nodes), nodes
