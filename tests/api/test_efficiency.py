"""The hot path's SQL budget: /v1/<bucket>/<key> (set, get, increment, delete) and
GET /v1/<bucket> (list) cost one SQL statement each once the key and the bucket are cached."""

from contextlib import contextmanager

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from api import principals, scoping
from api.models import Item
from tests.conftest import token_client

FORM = "application/x-www-form-urlencoded"


def only_sql(captured: CaptureQueriesContext) -> str:
    assert len(captured.captured_queries) == 1, captured.captured_queries
    return captured.captured_queries[0]["sql"]


# A write's one statement takes its bucket's lock (shared), writes the key and records the change
# for watchers through a function (api.history): the write itself is its `w` part.
LOCKED = "WITH LOCKED AS (SELECT PG_ADVISORY_XACT_LOCK_SHARED("


def the_write(captured: CaptureQueriesContext) -> str:
    """The write of the request's only statement (upper case), checked to record its change."""
    sql = only_sql(captured).upper()
    assert sql.startswith(LOCKED), sql
    assert "API_RECORD_CHANGE(" in sql, sql
    return sql.split(" W AS (", 1)[1]


def warm_up(client, bucket: str, key: str = "warm-up") -> None:
    """Cache the key's (or token's) lookup and the bucket, and write last_used_at: a set of
    another key than the one measured."""
    response = client.post(f"/v1/{bucket}/{key}", b"1", content_type=FORM)
    assert response.status_code == 200, response.content


@contextmanager
def one_query():
    with CaptureQueriesContext(connection) as captured:
        yield captured
    assert len(captured.captured_queries) == 1, [q["sql"] for q in captured.captured_queries]


def test_set_is_one_upsert(alice, bucket):
    warm_up(alice.client, bucket)
    with one_query() as captured:
        response = alice.set(bucket, "foo", "bar")
    assert response.status_code == 200
    sql = the_write(captured)
    assert sql.startswith("INSERT INTO")
    assert "ON CONFLICT" in sql


def test_set_of_an_existing_key_is_still_one_upsert(alice, bucket):
    warm_up(alice.client, bucket)
    alice.set(bucket, "foo", "one")
    with one_query() as captured:
        response = alice.set(bucket, "foo", "two")
    assert response.status_code == 200
    sql = the_write(captured)
    assert sql.startswith("INSERT INTO") and "ON CONFLICT" in sql
    assert Item.objects.get(bucket_id=bucket, key="foo").value == b"two"


def test_get_is_one_select(alice, bucket):
    alice.set(bucket, "foo", "bar")
    with one_query() as captured:
        response = alice.client.get(f"/v1/{bucket}/foo")
    assert response.content == b"bar"
    assert only_sql(captured).upper().startswith("SELECT")


def test_increment_is_one_upsert(alice, bucket):
    warm_up(alice.client, bucket)
    with one_query() as captured:
        response = alice.client.patch(f"/v1/{bucket}/n", b"+5", content_type="text/plain")
    assert response.content == b"5"
    sql = the_write(captured)
    assert sql.startswith("INSERT INTO")
    assert "ON CONFLICT" in sql


def test_increment_of_an_existing_counter_is_one_upsert(alice, bucket):
    alice.set(bucket, "n", "40")
    with one_query() as captured:
        response = alice.client.patch(f"/v1/{bucket}/n", b"+2", content_type="text/plain")
    assert response.content == b"42"
    sql = the_write(captured)
    assert sql.startswith("INSERT INTO") and "ON CONFLICT" in sql


def test_delete_is_one_delete(alice, bucket):
    alice.set(bucket, "foo", "bar")
    with one_query() as captured:
        response = alice.client.delete(f"/v1/{bucket}/foo")
    assert response.status_code == 200
    assert the_write(captured).startswith("DELETE FROM")
    assert not Item.objects.filter(bucket_id=bucket, key="foo").exists()


def test_a_missing_key_is_one_query_too(alice, bucket):
    warm_up(alice.client, bucket)
    with one_query() as captured:
        response = alice.client.get(f"/v1/{bucket}/nope")
    assert response.status_code == 404
    assert only_sql(captured).upper().startswith("SELECT")


@pytest.mark.parametrize(
    "method, body, status, statement",
    [
        ("post", b"v", 200, "INSERT INTO"),
        ("get", None, 200, "SELECT"),
        ("patch", b"+1", 200, "INSERT INTO"),
        ("delete", None, 200, "DELETE FROM"),
    ],
)
def test_with_a_token_each_operation_is_one_query(alice, bucket, method, body, status, statement):
    alice.set(bucket, "app/n", "1")
    client = token_client(alice.token(bucket, "app/"))
    warm_up(client, bucket, "app/warm-up")  # the token's first request looks it up
    kwargs = {} if body is None else {"data": body, "content_type": "text/plain"}
    with one_query() as captured:
        response = getattr(client, method)(f"/v1/{bucket}/app/n", **kwargs)
    assert response.status_code == status, response.content
    sql = only_sql(captured).upper() if statement == "SELECT" else the_write(captured)
    assert sql.startswith(statement)


def test_a_token_list_page_is_one_query(alice, bucket):
    alice.set(bucket, "app/a", "1")
    client = token_client(alice.token(bucket, "app/"))
    client.get(f"/v1/{bucket}")  # warm-up
    with one_query():
        response = client.get(f"/v1/{bucket}")
    assert response.content == b"app/a"


@pytest.mark.parametrize("query", ["", "?values=true", "?prefix=k", "?limit=2&values=true"])
def test_a_list_page_is_one_query_with_limit_and_no_offset_or_count(alice, bucket, query):
    for key in ("k1", "k2", "k3", "x"):
        alice.set(bucket, key, "v")
    with one_query() as captured:
        response = alice.client.get(f"/v1/{bucket}{query}")
    assert response.status_code == 200
    sql = only_sql(captured).upper()
    assert sql.startswith("SELECT")
    assert " LIMIT " in sql
    assert "OFFSET" not in sql
    assert "COUNT(" not in sql


@pytest.mark.parametrize("values", ["false", "true"])
def test_a_page_after_a_cursor_is_one_query(alice, bucket, values):
    for key in ("a", "b", "c", "d", "e"):
        alice.set(bucket, key, "v")
    first = alice.client.get(f"/v1/{bucket}?limit=2&values={values}")
    cursor = first["X-Next-Cursor"]
    with one_query() as captured:
        response = alice.client.get(f"/v1/{bucket}?limit=2&values={values}&cursor={cursor}")
    assert [line.split("\t")[0] for line in response.content.decode().splitlines()] == ["c", "d"]
    sql = only_sql(captured).upper()
    assert " LIMIT " in sql
    assert "OFFSET" not in sql
    assert "COUNT(" not in sql


def test_a_malformed_api_key_is_refused_without_a_query(bucket, client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get(f"/v1/{bucket}/foo", headers={"X-Api-Key": "tdb_not-a-key"})
    assert response.status_code == 403


def test_a_malformed_token_is_refused_without_a_query(bucket, client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get(f"/v1/{bucket}/foo", headers={"X-Token": "NOT-A-TOKEN"})
    assert response.status_code == 403


def test_an_uncached_first_request_costs_three_queries_plus_the_operation(
    alice, bucket, django_assert_num_queries
):
    principals.forget_all()
    scoping.forget_all()
    # 1. the API key's lookup (with the account's quotas, one SELECT with joins),
    # 2. the UPDATE of last_used_at (the key's first request in this worker),
    # 3. the bucket's lookup (owner, default_ttl, key_count),
    # 4. the operation itself: one upsert (with the record of its change: api.history).
    with django_assert_num_queries(4) as captured:
        response = alice.set(bucket, "foo", "bar")
    assert response.status_code == 200
    kinds = [q["sql"].split()[0].upper() for q in captured.captured_queries]
    assert kinds == ["SELECT", "UPDATE", "SELECT", "WITH"]


def test_an_uncached_token_costs_its_lookup_and_the_bucket_plus_the_operation(
    alice, bucket, django_assert_num_queries
):
    alice.set(bucket, "app/a", "1")
    client = token_client(alice.token(bucket, "app/"))
    principals.forget_all()
    scoping.forget_all()
    # The token's lookup, the bucket's lookup, then the SELECT of the value: a token has no
    # last_used_at to write.
    with django_assert_num_queries(3):
        response = client.get(f"/v1/{bucket}/app/a")
    assert response.content == b"1"


def test_a_second_request_within_the_cache_lifetime_is_one_query(
    alice, bucket, django_assert_num_queries
):
    principals.forget_all()
    scoping.forget_all()
    alice.set(bucket, "foo", "bar")  # pays for the lookups
    with django_assert_num_queries(1):
        assert alice.client.get(f"/v1/{bucket}/foo").content == b"bar"


def test_a_prefix_page_is_a_range_scan_of_the_unique_index(alice, bucket):
    assert connection.vendor == "postgresql"
    Item.objects.bulk_create(
        Item(bucket_id=bucket, key=f"{group}/{n:05d}", value=b"v")
        for group in ("alpha", "beta", "gamma", "delta")
        for n in range(1500)
    )
    other = alice.new_bucket()
    Item.objects.bulk_create(
        Item(bucket_id=other, key=f"beta/{n:05d}", value=b"v") for n in range(500)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Item._meta.db_table}")
    warm_up(alice.client, bucket)

    statements = []

    def record(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        response = alice.client.get(f"/v1/{bucket}?prefix=beta/&limit=10&values=true")
    assert response.status_code == 200
    assert response.content.decode().splitlines()[0] == "beta/00000\tv"
    assert len(statements) == 1
    sql, params = statements[0]

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan using item_bucket_key" in plan or (
        "Index Only Scan using item_bucket_key" in plan
    ), plan
    index_cond = next(line for line in plan.splitlines() if "Index Cond" in line)
    assert "key >= " in index_cond and "key < " in index_cond, plan  # the prefix is a range
    assert "Seq Scan" not in plan, plan
    assert "Sort" not in plan, plan  # the index gives byte order: no sort step
