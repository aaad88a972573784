"""What a whole request costs where it is paid: the statements that reach PostgreSQL and the
commands that reach Redis, counted on the wire (tests/wire.py) between the production web tier
(`make serve`) and the two servers. Once an API key's or a token's lookup is cached, every key
operation and a list page cost one statement and one Redis command."""

import gc
import json
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from django.test import RequestFactory
from django.utils import timezone

from api.models import Item
from tests.conftest import RUN_PREFIX, Persona, fill_keys
from tests.serving import request, served
from tests.wire import PostgresParses, PostgresStatements, Proxy, RedisCommands

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def wire():
    db = connection.settings_dict
    postgres = Proxy((db["HOST"], int(db["PORT"])), PostgresStatements)
    redis_url = urlsplit(settings.REDIS_URL)
    redis = Proxy((redis_url.hostname, redis_url.port or 6379), RedisCommands)
    yield (
        postgres,
        redis,
        (
            f"postgres://{db['USER']}@127.0.0.1:{postgres.port}/{db['NAME']}",
            f"redis://127.0.0.1:{redis.port}{redis_url.path or '/0'}",
        ),
    )
    postgres.close()
    redis.close()


def serve_through(wire, tmp_path, **env):
    """`make serve` (1 worker, 1 thread: its cached lookups serve every request) talking to
    PostgreSQL and Redis through the counting proxies."""
    _, _, (database_url, redis_url) = wire
    return served(
        database_url,
        tmp_path / "server.log",
        REDIS_URL=redis_url,
        THISDB_REDIS_PREFIX=RUN_PREFIX,
        WEB_WORKERS="1",
        WEB_THREADS="1",
        **env,
    )


# (what, method, path, body, expected status); {b}: the bucket, {big}: the 1,000,000-key one
REQUESTS = [
    ("get a key", "GET", "/v1/{b}/k", None, 200),
    ("get a missing key", "GET", "/v1/{b}/nothing", None, 404),
    ("set a key", "POST", "/v1/{b}/k", b"new value", 200),
    ("set a new key", "POST", "/v1/{b}/fresh", b"v", 200),
    ("increment", "PATCH", "/v1/{b}/n", b"+1", 200),
    ("delete a key", "DELETE", "/v1/{b}/gone", None, 200),
    ("a list page", "GET", "/v1/{b}?values=true", None, 200),
    ("a list page of 1,000,000 keys", "GET", "/v1/{big}?values=true&limit=1000", None, 200),
    ("a far list page", "GET", "/v1/{big}?prefix=k0999&limit=1000", None, 200),
]


def test_each_operation_costs_one_statement_and_one_redis_command(wire, tmp_path):
    postgres, redis, _ = wire
    alice = Persona("alice")
    bucket, big = alice.new_bucket(), alice.new_bucket()
    alice.set(bucket, "k", "v")
    alice.set(bucket, "n", "1")
    alice.set(bucket, "gone", "v")
    fill_keys(big, 1_000_000)
    token = alice.token(bucket, "", "read")
    key = {"X-Api-Key": alice.key}
    with serve_through(wire, tmp_path, THISDB_AUTH_CACHE_SECONDS="300") as port:
        # Warm up: the key's, the token's and the buckets' lookups are cached now, and the
        # key's last use is written (at most once a minute).
        for path in (f"/v1/{bucket}/k", f"/v1/{big}?limit=1"):
            assert request(port, "GET", path, headers=key)[0] == 200
        assert request(port, "GET", f"/v1/{bucket}/k", headers={"X-Token": token})[0] == 200
        costs = {}
        for what, method, path, body, status in REQUESTS:
            postgres.reset(), redis.reset()
            answer = request(port, method, path.format(b=bucket, big=big), body, key)
            assert answer[0] == status, (what, answer)
            costs[what] = (postgres.reset(), redis.reset())
        postgres.reset(), redis.reset()
        assert request(port, "GET", f"/v1/{bucket}/k", headers={"X-Token": token})[0] == 200
        costs["get a key with a token"] = (postgres.reset(), redis.reset())

    assert costs == {what: (1, 1) for what in costs}, costs
    assert Item.objects.filter(bucket_id=bucket, key="fresh").exists()


def test_json_request_logs_cost_no_statement_and_no_redis_command(wire, tmp_path):
    """THISDB_LOG_FORMAT=json: each request's line is made of what the request holds already,
    so every key operation and a list page still cost one statement and one Redis command."""
    postgres, redis, _ = wire
    alice = Persona("alice")
    bucket = alice.new_bucket()
    for name, value in (("k", "v"), ("n", "1"), ("gone", "v")):
        alice.set(bucket, name, value)
    key = {"X-Api-Key": alice.key}
    small = [entry for entry in REQUESTS if "{big}" not in entry[2]]
    log = tmp_path / "server.log"
    with serve_through(
        wire, tmp_path, THISDB_AUTH_CACHE_SECONDS="300", THISDB_LOG_FORMAT="json"
    ) as port:
        assert request(port, "GET", f"/v1/{bucket}/k", headers=key)[0] == 200  # warm up
        costs = {}
        for what, method, path, body, status in small:
            postgres.reset(), redis.reset()
            answer = request(port, method, path.format(b=bucket), body, key)
            assert answer[0] == status, (what, answer)
            costs[what] = (postgres.reset(), redis.reset())

    assert costs == {what: (1, 1) for what in costs}, costs
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    logged = [line for line in lines if line.get("logger") == "thisdb.requests"]
    assert [line["status"] for line in logged[-len(small) :]] == [entry[4] for entry in small]


def test_an_uncached_lookup_costs_its_statements_once(wire, tmp_path):
    """The first request of a key (the key's and the bucket's lookups, its last use) pays what
    the cache then saves: the second request costs one statement."""
    postgres, redis, _ = wire
    alice = Persona("alice")
    bucket = alice.new_bucket()
    alice.set(bucket, "k", "v")
    key = {"X-Api-Key": alice.key}
    with serve_through(wire, tmp_path) as port:
        assert request(port, "GET", "/readyz")[0] == 200  # the pool's connection, opened
        postgres.reset()
        assert request(port, "GET", f"/v1/{bucket}/k", headers=key)[0] == 200
        first = postgres.reset()
        assert request(port, "GET", f"/v1/{bucket}/k", headers=key)[0] == 200
        second = postgres.reset()
    assert first == 4  # the key, its last use, the bucket, the value
    assert second == 1


def test_a_list_page_of_a_million_keys_is_one_index_range_scan(alice):
    bucket = alice.new_bucket()
    fill_keys(bucket, 1_000_000)
    from api import statements

    captured = []

    def explain(execute, sql, params, many, context):
        if not sql.startswith("EXPLAIN"):
            captured.append(sql)
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN " + sql, params)
                captured.append("\n".join(row[0] for row in cursor.fetchall()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explain):
        rows = statements.list_page(
            bucket,
            prefix="k05",
            after="k0500500",
            limit=1001,
            with_values=True,
        )
    assert len(rows) == 1001 and rows[0][0] == "k0500501"
    plan = captured[1]
    assert "Index Scan using item_bucket_key" in plan, plan
    assert "Sort" not in plan and "Seq Scan" not in plan, plan
    assert "Limit" in plan


def test_the_sweep_reads_expired_keys_from_their_index(alice):
    """Each batch of the sweep, its last one included, is an index range scan on expires_at:
    with most of a table expired, a plain LIMIT is planned as a sequential scan, and the
    statement that finds the sweep done then reads every row of the table."""
    live, expired = alice.new_bucket(), alice.new_bucket()
    fill_keys(live, 50_000)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO api_item (bucket_id, key, value, expires_at, updated_at) "
            "SELECT %s, 'x' || lpad(i::text, 7, '0'), 'v'::bytea, "
            "now() - interval '1 minute' - i * interval '1 millisecond', now() "
            "FROM generate_series(0, 199999) AS i",
            [expired],
        )
        cursor.execute("ANALYZE api_item")
    from api import statements

    plans = []

    def explain(execute, sql, params, many, context):
        if sql.startswith(("SELECT id, bucket_id FROM api_item", "DELETE FROM api_item")):
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN " + sql, params)
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explain):
        deleted = statements.sweep_expired_items(timezone.now(), rest=0)
    assert deleted == 200_000
    # 100 full batches of 2,000 (each: the batch, then its DELETE), then the one that finds none
    assert len(plans) == 201
    batches, deletes = plans[0::2], plans[1::2]
    for plan in (batches[0], batches[-1]):
        assert "Index Scan using item_expires_at" in plan, plan
        assert "Seq Scan" not in plan and "Sort" not in plan, plan
    for plan in (deletes[0], deletes[-1]):
        assert "Index Scan using api_item_pkey" in plan, plan
        assert "Seq Scan" not in plan, plan
    assert Item.objects.filter(bucket_id=live).count() == 50_000


def test_without_the_pool_a_persistent_connection_adds_no_health_check(wire, tmp_path):
    """DATABASE_POOL_SIZE=0: one persistent connection per thread, used without a "SELECT 1"
    before each request."""
    postgres, redis, _ = wire
    alice = Persona("alice")
    bucket = alice.new_bucket()
    alice.set(bucket, "k", "v")
    key = {"X-Api-Key": alice.key}
    with serve_through(wire, tmp_path, DATABASE_POOL_SIZE="0") as port:
        assert request(port, "GET", f"/v1/{bucket}/k", headers=key)[0] == 200
        costs = []
        for _ in range(3):
            postgres.reset()
            assert request(port, "GET", f"/v1/{bucket}/k", headers=key)[0] == 200
            costs.append(postgres.reset())
    assert costs == [1, 1, 1]


def test_the_api_statements_are_prepared_once_per_connection(tmp_path):
    """From its 5th run on a connection, a statement is PostgreSQL's prepared statement: a GET,
    a set and an increment then send neither a Query nor a Parse, so nothing is parsed or
    planned again (DATABASE_PREPARED_STATEMENTS, thisdb_site/settings.py)."""
    db = connection.settings_dict
    parses = Proxy((db["HOST"], int(db["PORT"])), PostgresParses)
    alice = Persona("alice")
    bucket = alice.new_bucket()
    alice.set(bucket, "k", "v")
    key = {"X-Api-Key": alice.key}
    # Each write to a new key: a key takes one write per second.
    steps = [
        ("GET", "/v1/{b}/k", None),
        ("POST", "/v1/{b}/s{n}", b"v"),
        ("PATCH", "/v1/{b}/i{n}", b"1"),
    ]
    try:
        with served(
            f"postgres://{db['USER']}@127.0.0.1:{parses.port}/{db['NAME']}",
            tmp_path / "server.log",
            REDIS_URL=settings.REDIS_URL,
            THISDB_REDIS_PREFIX=RUN_PREFIX,
            WEB_WORKERS="1",
            WEB_THREADS="1",
            # One pooled connection (the pool also has room for the bulk threads'), so that
            # the warm-up's runs all land on the connection the last requests use.
            DATABASE_POOL_SIZE="1",
        ) as port:
            for n in range(8):  # past the 5th run of each statement
                for method, path, body in steps:
                    answer = request(port, method, path.format(b=bucket, n=n), body, key)
                    assert answer[0] == 200, answer
            parses.reset()
            for method, path, body in steps:
                answer = request(port, method, path.format(b=bucket, n="last"), body, key)
                assert answer[0] == 200, answer
            assert parses.reset() == 0
    finally:
        parses.close()


def _wsgi_call(handler, environ: dict) -> int:
    """One request through Django's WSGI handler, as a server makes it; its status."""
    status = []
    result = handler(environ, lambda line, headers, exc_info=None: status.append(line))
    try:
        b"".join(result)
    finally:
        result.close()
    return int(status[0].split()[0])


def test_an_api_request_leaves_no_reference_cycles(alice):
    """A request's objects are freed by reference counting as soon as it is answered: none is
    left in a reference cycle, which only the garbage collector frees. (DRF's view and Request
    hold themselves in cycles; a collection every ~24 requests cost ~11 us a request.) Not
    asked of a statement that fails (incrementing a value that is not a number): Django's
    DatabaseErrorWrapper keeps the traceback in its own frame, a cycle of Django's."""
    bucket = alice.new_bucket()
    alice.set(bucket, "k", "v")
    alice.set(bucket, "gone-0", "v")
    alice.set(bucket, "gone-1", "v")
    handler, factory = WSGIHandler(), RequestFactory()
    key = {"X-Api-Key": alice.key}
    requests = [  # {n}: 0 warms up, 1 is counted; a key takes one write per second
        ("GET", "/v1/{b}/k", b"", 200),
        ("GET", "/v1/{b}/nothing", b"", 404),
        ("POST", "/v1/{b}/s{n}", b"v", 200),
        ("PATCH", "/v1/{b}/i{n}", b"+1", 200),
        ("PATCH", "/v1/{b}/i{n}", b"one", 400),  # not a number
        ("POST", "/v1/{b}/t{n}?ttl=soon", b"v", 400),
        ("DELETE", "/v1/{b}/gone-{n}", b"", 200),
        ("GET", "/v1/{b}?values=true&format=json", b"", 200),
        ("GET", "/v1/nosuchbucket/k", b"", 404),
    ]
    left = {}
    gc.collect()
    for method, path, body, status in requests:
        for n in range(2):
            environ = factory.generic(method, path.format(b=bucket, n=n), body, headers=key).environ
            gc.disable()
            try:
                got = _wsgi_call(handler, environ)
                found = gc.collect()  # the objects that only the collector could free
            finally:
                gc.enable()
            assert got == status, (method, path)
        left[f"{method} {path}"] = found
    assert left == {name: 0 for name in left}


def test_a_transaction_costs_a_bounded_number_of_statements_and_one_redis_command(wire, tmp_path):
    """A transaction is one database transaction of a few statements whatever its size (its
    ops are batched by kind), and one Redis command counts it and claims its keys."""
    postgres, redis, _ = wire
    alice = Persona("alice")
    bucket = alice.new_bucket()
    alice.set(bucket, "a", "1")
    key = {"X-Api-Key": alice.key, "Content-Type": "application/json"}
    hundred_sets = {"ops": [{"op": "set", "key": f"s{n:03d}", "value": "v"} for n in range(100)]}

    def mixed(first: int, times: int) -> dict:
        """10 ops a time: sets, increments, a delete, a get, a count after them (a 2nd group)."""
        ops: list[dict] = []
        for n in range(first, first + times):
            ops += [{"op": "set", "key": f"m{n}/{i}", "value": "v"} for i in range(4)]
            ops += [{"op": "increment", "key": f"c{n}/{i}", "by": 2} for i in range(3)]
            ops += [{"op": "delete", "key": f"d{n}"}, {"op": "get", "key": "a"}]
        return {"ops": [*ops, {"op": "count", "prefix": "m"}]}

    with serve_through(wire, tmp_path, THISDB_AUTH_CACHE_SECONDS="300") as port:
        assert request(port, "GET", f"/v1/{bucket}/a", headers=key)[0] == 200  # warm up
        # and the transactions' script, which Redis may not hold (after a SCRIPT FLUSH): its
        # loading would count two commands more.
        one_get = json.dumps({"ops": [{"op": "get", "key": "a"}]}).encode()
        assert request(port, "POST", f"/v1/{bucket}", one_get, key)[0] == 200
        costs = {}
        bodies = (
            ("100 sets", hundred_sets),
            ("10 mixed", mixed(0, 1)),
            ("100 mixed", mixed(1, 10)),
        )
        for what, body in bodies:
            postgres.reset(), redis.reset()
            answer = request(port, "POST", f"/v1/{bucket}", json.dumps(body).encode(), key)
            assert answer[0] == 200, answer
            costs[what] = (postgres.reset(), redis.reset())
    # The bucket's lock, which says whether it is watched (api.history.transaction_lock), BEGIN
    # (with the isolation level), the batched statements, COMMIT, the lock let go: a bucket
    # nobody watches has no changes to record (one more statement when watched). With a
    # delete or a check, the versions are first read and locked; increments run inside a
    # savepoint (SAVEPOINT, RELEASE), to name an op that fails; counts walk the index (SET
    # LOCAL).
    assert costs["100 sets"] == (5, 1), costs
    assert costs["10 mixed"] == costs["100 mixed"] == (13, 1), costs
    assert Item.objects.filter(bucket_id=bucket, key__startswith="s").count() == 100
