"""The transaction engine (api.transactions) and its rate limit (api.limits.check_batch), on the
real PostgreSQL and Redis; the HTTP view over them is tested with it."""

import base64
import json
import random
import threading

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from api import limits, principals, scoping, statements, transactions, writes
from api.errors import BadRequest, Forbidden, PayloadTooLarge, ServiceUnavailable
from api.models import Bucket
from api.transactions import COUNT_CAP, Conflict
from tests.conftest import Persona, fill_keys


def caller(persona, token: str | None = None):
    if token is not None:
        return principals.principal_for_token(token)
    return principals.principal_for_api_key(persona.key)


def forget_cached() -> None:
    """Drop the cached key and bucket lookups, so changed quotas and figures are read."""
    principals.forget_all()
    scoping.forget_all()


def txn(persona, bucket: str, ops: list, checks: list | None = None, token: str | None = None):
    """Parse, authorize and run a transaction as `persona` (or its token); its answer."""
    body = {"ops": ops} if checks is None else {"checks": checks, "ops": ops}
    plan = transactions.parse(json.dumps(body).encode())
    principal = caller(persona, token)
    transactions.authorize(principal, plan)
    bucket_info = scoping.owned_bucket(principal, bucket)
    # What the API passes as the claim counts and takes write slots in Redis: the engine's
    # tests leave that to the view's tests (test_transactions.py) and claim nothing.
    return writes.apply_transaction(principal, bucket_info, plan, claim=lambda *_: None)


def results(persona, bucket: str, ops: list, checks: list | None = None) -> list:
    answer = txn(persona, bucket, ops, checks)
    assert answer["ok"] is True
    return answer["results"]


def value(bucket: str, key: str) -> bytes | None:
    return statements.get_value(bucket, key)


def test_each_op_kind(alice, bucket):
    statements.set_value(bucket, "old", b"x", 0)
    statements.set_value(bucket, "tmp:1", b"x", 0)
    statements.set_value(bucket, "tmp:2", b"x", 0)
    statements.set_value(bucket, "user:1", b"x", 0)
    got = results(
        alice,
        bucket,
        [
            {"op": "set", "key": "a", "value": "text", "ttl": 60},
            {"op": "set", "key": "img", "value": "/wA=", "encoding": "base64"},
            {"op": "increment", "key": "n", "by": 5},
            {"op": "delete", "key": "old"},
            {"op": "delete", "key": "never"},
            {"op": "get", "key": "x"},
            {"op": "count", "prefix": "user:"},
            {"op": "delete_prefix", "prefix": "tmp:"},
        ],
    )
    assert [r.get("key", r.get("prefix")) for r in got] == [
        *["a", "img", "n", "old", "never", "x", "user:", "tmp:"]
    ]
    assert got[2]["value"] == 5
    assert got[3:] == [
        {"key": "old", "deleted": True},
        {"key": "never", "deleted": False},
        {"key": "x", "value": None},
        {"prefix": "user:", "count": 1, "more": False},
        {"prefix": "tmp:", "deleted": 2},
    ]
    assert value(bucket, "a") == b"text"
    assert value(bucket, "img") == b"\xff\x00"
    assert value(bucket, "n") == b"5"
    assert value(bucket, "old") is None
    assert value(bucket, "tmp:1") is None
    assert (
        0
        < statements.list_page(bucket, prefix="a", after=None, limit=1, with_values=True)[0][2]
        <= 60
    )


def test_a_get_answers_text_or_base64_with_the_version(alice, bucket):
    text = statements.set_value(bucket, "t", "héllo".encode(), 0)
    binary = statements.set_value(bucket, "b", b"\xff\xfe", 0)
    got = results(alice, bucket, [{"op": "get", "key": "t"}, {"op": "get", "key": "b"}])
    assert got == [
        {"key": "t", "value": "héllo", "version": str(text)},
        {
            "key": "b",
            "value": base64.b64encode(b"\xff\xfe").decode(),
            "encoding": "base64",
            "version": str(binary),
        },
    ]


def test_versions_grow_and_are_the_ones_stored(alice, bucket):
    first = results(alice, bucket, [{"op": "set", "key": "a", "value": "1"}])[0]["version"]
    second = results(alice, bucket, [{"op": "increment", "key": "a", "by": 1}])[0]
    assert int(second["version"]) > int(first)
    assert second["value"] == 2
    assert statements.current_version(bucket, "a") == int(second["version"])


def test_a_get_after_a_set_sees_it_and_one_before_does_not(alice, bucket):
    statements.set_value(bucket, "a", b"old", 0)
    got = results(
        alice,
        bucket,
        [
            {"op": "get", "key": "a"},
            {"op": "set", "key": "a", "value": "new"},
            {"op": "get", "key": "a"},
            {"op": "count", "prefix": "b"},
            {"op": "set", "key": "b1", "value": "1"},
            {"op": "count", "prefix": "b"},
        ],
    )
    assert got[0]["value"] == "old"
    assert got[2] == {"key": "a", "value": "new", "version": got[1]["version"]}
    assert [got[3]["count"], got[5]["count"]] == [0, 1]


def test_delete_prefix_then_set_survives_and_set_then_delete_prefix_is_removed(alice, bucket):
    statements.set_value(bucket, "tmp:a", b"x", 0)
    got = results(
        alice,
        bucket,
        [
            {"op": "set", "key": "tmp:b", "value": "gone"},
            {"op": "delete_prefix", "prefix": "tmp:"},
            {"op": "set", "key": "tmp:c", "value": "kept"},
            {"op": "get", "key": "tmp:b"},
            {"op": "count", "prefix": "tmp:"},
        ],
    )
    assert got[1] == {"prefix": "tmp:", "deleted": 2}
    assert got[3] == {"key": "tmp:b", "value": None}
    assert got[4]["count"] == 1
    assert value(bucket, "tmp:c") == b"kept"
    assert value(bucket, "tmp:b") is None


def test_checks_that_hold_let_the_ops_run(alice, bucket):
    version = statements.set_value(bucket, "a", b"1", 0)
    got = results(
        alice,
        bucket,
        [{"op": "set", "key": "a", "value": "2"}, {"op": "set", "key": "b", "value": "1"}],
        checks=[{"key": "a", "version": str(version)}, {"key": "b", "version": None}],
    )
    assert len(got) == 2
    assert value(bucket, "a") == b"2"


def test_a_failed_check_is_a_conflict_and_nothing_is_applied(alice, bucket):
    a = statements.set_value(bucket, "a", b"1", 0)
    b = statements.set_value(bucket, "b", b"1", 0)
    with pytest.raises(Conflict) as caught:
        txn(
            alice,
            bucket,
            [{"op": "set", "key": "a", "value": "2"}, {"op": "delete", "key": "b"}],
            checks=[
                {"key": "a", "version": str(a)},
                {"key": "b", "version": None},
                {"key": "c", "version": "1"},
            ],
        )
    assert caught.value.status_code == 409
    assert caught.value.body == {
        "ok": False,
        "failed": [1, 2],
        "versions": {"a": str(a), "b": str(b)},
    }
    assert (value(bucket, "a"), value(bucket, "b")) == (b"1", b"1")


def test_an_expired_key_does_not_exist_for_a_check(alice, bucket):
    statements.set_value(bucket, "a", b"1", 0)
    Bucket.objects.get(pk=bucket).items.filter(key="a").update(expires_at="2000-01-01T00:00Z")
    got = results(
        alice, bucket, [{"op": "get", "key": "a"}], checks=[{"key": "a", "version": None}]
    )
    assert got == [{"key": "a", "value": None}]


def test_a_key_written_twice_is_refused_naming_both_ops(alice, bucket):
    with pytest.raises(BadRequest, match=r"ops\[2\].*ops\[0\]"):
        transactions.parse(
            json.dumps(
                {
                    "ops": [
                        {"op": "set", "key": "a", "value": "1"},
                        {"op": "get", "key": "a"},
                        {"op": "delete", "key": "a"},
                    ]
                }
            ).encode()
        )


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"[1]", "JSON object"),
        (b"{nope", "JSON object"),
        (b'{"ops": [], "extra": 1}', "unknown fields extra"),
        (b'{"ops": {}}', "ops must be a list"),
        (b'{"ops": [{"op": "get", "key": "a"}, {"op": "frobnicate"}]}', r"ops\[1\]: op must"),
        (b'{"ops": [{"op": "get", "key": "a", "value": "x"}]}', r"ops\[0\]: .*unknown fields"),
        (b'{"ops": [{"op": "get"}]}', r"ops\[0\]: key must be a string"),
        (b'{"ops": [{"op": "get", "key": ""}]}', r"ops\[0\]: a key must be 1 to"),
        (b'{"ops": [{"op": "set", "key": "a"}]}', r"ops\[0\]: value must be a string"),
        (b'{"ops": [{"op": "set", "key": "a", "value": "x", "ttl": -1}]}', r"ops\[0\]: ttl"),
        (b'{"ops": [{"op": "set", "key": "a", "value": "x", "ttl": 1.5}]}', r"ops\[0\]: ttl"),
        (
            b'{"ops": [{"op": "set", "key": "a", "value": "@", "encoding": "base64"}]}',
            r"ops\[0\]: value is not valid base64",
        ),
        (b'{"ops": [{"op": "increment", "key": "n", "by": 1.0}]}', r"ops\[0\]: by must be"),
        (b'{"ops": [{"op": "increment", "key": "n", "by": true}]}', r"ops\[0\]: by must be"),
        (
            b'{"ops": [{"op": "increment", "key": "n", "by": 9223372036854775808}]}',
            r"ops\[0\]: by must fit",
        ),
        (b'{"ops": [{"op": "count"}]}', r"ops\[0\]: prefix must be a string"),
        (b'{"checks": [{"key": "a"}], "ops": []}', r"checks\[0\]: version is missing"),
        (b'{"checks": [{"key": "a", "version": 17}], "ops": []}', r"checks\[0\]: version must"),
        (b'{"ops": [{"op": "get", "key": "a\\u0000"}]}', r"ops\[0\]: .*NUL"),
    ],
)
def test_an_invalid_body_is_refused_naming_the_op(body, where):
    with pytest.raises(BadRequest, match=where):
        transactions.parse(body)


def test_more_than_the_most_ops_is_refused():
    ops = [{"op": "get", "key": "a"}] * (transactions.MAX_OPS + 1)
    with pytest.raises(BadRequest, match="at most 1000 ops"):
        transactions.parse(json.dumps({"ops": ops}).encode())


def test_a_value_over_the_single_value_limit_is_refused(settings):
    settings.THISDB_VALUE_MAX_BYTES = 3
    body = {
        "ops": [
            {"op": "set", "key": "a", "value": "abc"},
            {"op": "set", "key": "b", "value": "abcd"},
        ]
    }
    with pytest.raises(PayloadTooLarge, match=r"ops\[1\]"):
        transactions.parse(json.dumps(body).encode())


def test_at_the_key_quota_only_existing_keys_are_written(alice, bucket, settings):
    settings.THISDB_MAX_KEYS_PER_BUCKET = 1
    statements.set_value(bucket, "a", b"1", 0)
    Bucket.objects.filter(pk=bucket).update(key_count=1)
    forget_cached()
    assert results(alice, bucket, [{"op": "set", "key": "a", "value": "2"}])
    for op in ({"op": "set", "key": "b", "value": "x"}, {"op": "increment", "key": "b", "by": 1}):
        with pytest.raises(Forbidden, match=r"ops\[1\]: key quota reached"):
            txn(alice, bucket, [{"op": "increment", "key": "a", "by": 1}, op])
    assert value(bucket, "a") == b"2"
    assert value(bucket, "b") is None


def test_at_the_storage_quota_writes_are_refused(alice, bucket, settings):
    settings.THISDB_MAX_STORED_BYTES = 0
    forget_cached()
    assert results(alice, bucket, [{"op": "delete", "key": "a"}])
    with pytest.raises(Forbidden, match=r"ops\[1\]: storage quota reached"):
        txn(alice, bucket, [{"op": "get", "key": "a"}, {"op": "set", "key": "a", "value": "x"}])


@pytest.mark.parametrize(
    ("stored", "by", "why"),
    [(b"9223372036854775806", 5, "64-bit"), (b"abc", 1, "not an integer")],
)
def test_a_failing_increment_is_named_and_nothing_is_applied(alice, bucket, stored, by, why):
    statements.set_value(bucket, "n", stored, 0)
    statements.set_value(bucket, "m", b"1", 0)
    with pytest.raises(BadRequest, match=rf"ops\[3\]: .*{why}"):
        txn(
            alice,
            bucket,
            [
                {"op": "set", "key": "x", "value": "1"},
                {"op": "increment", "key": "m", "by": 1},
                {"op": "increment", "key": "fresh", "by": 1},
                {"op": "increment", "key": "n", "by": by},
            ],
        )
    assert (value(bucket, "x"), value(bucket, "m"), value(bucket, "n")) == (None, b"1", stored)


def test_delete_prefix_past_its_bound_is_refused_whole(alice, bucket, monkeypatch):
    monkeypatch.setattr(transactions, "DELETE_PREFIX_MAX", 3)
    for i in range(4):
        statements.set_value(bucket, f"tmp:{i}", b"x", 0)
    with pytest.raises(BadRequest, match=r"ops\[1\]: .*at most 3 keys"):
        txn(
            alice,
            bucket,
            [{"op": "set", "key": "a", "value": "1"}, {"op": "delete_prefix", "prefix": "tmp:"}],
        )
    assert value(bucket, "tmp:0") == b"x"
    assert value(bucket, "a") is None
    got = results(alice, bucket, [{"op": "delete_prefix", "prefix": "tmp:1"}])
    assert got == [{"prefix": "tmp:1", "deleted": 1}]


def test_a_count_stops_at_its_cap_and_says_there_are_more(alice, bucket, monkeypatch):
    monkeypatch.setattr(transactions, "COUNT_CAP", 2)
    for i in range(3):
        statements.set_value(bucket, f"k{i}", b"x", 0)
    got = results(alice, bucket, [{"op": "count", "prefix": ""}, {"op": "count", "prefix": "k1"}])
    assert got == [
        {"prefix": "", "count": 2, "more": True},
        {"prefix": "k1", "count": 1, "more": False},
    ]


def test_a_token_reaches_only_its_prefix_and_permissions(alice, bucket):
    statements.set_value(bucket, "u:a", b"1", 0)
    reader = alice.token(bucket, "u:", "read")
    got = txn(
        alice, bucket, [{"op": "get", "key": "u:a"}, {"op": "count", "prefix": "u:"}], token=reader
    )
    assert got["results"][1]["count"] == 1
    refusals = [
        (
            [{"op": "get", "key": "u:a"}, {"op": "set", "key": "u:b", "value": "x"}],
            r"ops\[1\]: .*no write",
        ),
        ([{"op": "count", "prefix": ""}], r"ops\[0\]: .*only covers"),
        ([{"op": "get", "key": "v"}], r"ops\[0\]: .*only covers"),
    ]
    for ops, why in refusals:
        with pytest.raises(Forbidden, match=why):
            txn(alice, bucket, ops, token=reader)
    writer = alice.token(bucket, "u:", "write")
    with pytest.raises(Forbidden, match=r"checks\[0\]: .*no read"):
        txn(alice, bucket, [], checks=[{"key": "u:a", "version": None}], token=writer)
    with pytest.raises(Forbidden, match=r"ops\[0\]: .*only covers"):
        txn(alice, bucket, [{"op": "delete_prefix", "prefix": "u"}], token=writer)
    txn(alice, bucket, [{"op": "delete_prefix", "prefix": "u:"}], token=writer)
    assert value(bucket, "u:a") is None


def test_a_hundred_sets_take_a_bounded_number_of_statements(alice, bucket):
    ops = [{"op": "set", "key": f"k{i}", "value": str(i)} for i in range(100)]
    checks = [{"key": "k0", "version": None}]
    plan = transactions.parse(json.dumps({"checks": checks, "ops": ops}).encode())
    principal = caller(alice)
    info = scoping.owned_bucket(principal, bucket)
    with CaptureQueriesContext(connection) as captured:
        answer = transactions.run(principal, info, plan, create=True)
    assert len(answer["results"]) == 100
    assert len(captured.captured_queries) <= 6, [q["sql"][:80] for q in captured.captured_queries]
    assert value(bucket, "k99") == b"99"


KEYS = [f"acct{i}" for i in range(5)]
THREADS, MOVES = 8, 12
START = 1000


@pytest.mark.django_db(transaction=True)
def test_concurrent_transfers_keep_the_total(alice):
    """Threads move amounts between five keys, each move checked against the versions it read
    and retried on a conflict: the total never changes and no transaction fails otherwise."""
    bucket = alice.new_bucket()
    principal = caller(alice)
    info = scoping.owned_bucket(principal, bucket)
    for key in KEYS:
        statements.set_value(bucket, key, str(START).encode(), 0)
    failures: list[BaseException] = []
    conflicts = [0]

    def run(ops, checks=None):
        body = {"ops": ops} if checks is None else {"checks": checks, "ops": ops}
        try:
            return transactions.run(
                principal, info, transactions.parse(json.dumps(body).encode()), create=True
            )
        finally:
            connection.close()  # back to the pool, as at the end of a request

    # Every round starts with all threads at once, so their transactions meet on the keys.
    rounds = threading.Barrier(THREADS, timeout=120)

    def move(rng: random.Random) -> None:
        src, dst = rng.sample(KEYS, 2)
        amount = rng.randint(1, 50)
        read = run([{"op": "get", "key": src}, {"op": "get", "key": dst}])["results"]
        rounds.wait()
        while True:
            try:
                run(
                    [
                        {"op": "increment", "key": src, "by": -amount},
                        {"op": "set", "key": dst, "value": str(int(read[1]["value"]) + amount)},
                    ],
                    checks=[
                        {"key": src, "version": read[0]["version"]},
                        {"key": dst, "version": read[1]["version"]},
                    ],
                )
                return
            except (Conflict, ServiceUnavailable):
                conflicts[0] += 1
            read = run([{"op": "get", "key": src}, {"op": "get", "key": dst}])["results"]

    def mover(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(MOVES):
                move(rng)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            failures.append(exc)
            rounds.abort()

    threads = [threading.Thread(target=mover, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    total = sum(int(value(bucket, key)) for key in KEYS)
    assert total == START * len(KEYS)


@pytest.mark.django_db(transaction=True)
def test_a_transaction_that_waited_for_a_writer_runs_again_on_its_commit(alice):
    """The first statement waits on the row lock of a writer that then commits a change: at
    REPEATABLE READ that is a serialization failure, and the transaction runs again, seeing it."""
    bucket = alice.new_bucket()
    principal = caller(alice)
    info = scoping.owned_bucket(principal, bucket)
    statements.set_value(bucket, "a", b"1", 0)
    locked, failures = threading.Event(), []

    def writer() -> None:
        try:
            with transaction.atomic():
                statements.set_value(bucket, "a", b"10", 0)
                locked.set()
                with connection.cursor() as cursor:
                    for _ in range(10_000):  # until the transaction waits for this row
                        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                        if cursor.fetchone()[0]:
                            break
                    else:
                        raise AssertionError("the transaction never waited for the row lock")
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            failures.append(exc)
            locked.set()
        finally:
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    locked.wait()
    body = {"ops": [{"op": "increment", "key": "a", "by": 1}]}
    answer = transactions.run(
        principal, info, transactions.parse(json.dumps(body).encode()), create=True
    )
    thread.join()
    assert failures == []
    assert answer["results"][0]["value"] == 11


# check_batch, on Redis and on the in-process limiter of the embedded default.


@pytest.fixture(params=["redis", "memory"])
def limiter_kind(request, settings):
    if request.param == "memory":
        settings.REDIS_URL = ""
    else:
        # make test always names the real Redis: a run without it must fail, not pass quietly.
        assert settings.REDIS_URL, "the Redis side of this test needs REDIS_URL (make test sets it)"
    limits.reset()
    return request.param


def test_check_batch_counts_its_cost_or_refuses_whole(alice, limiter_kind):
    user, key = alice.user.id, alice.api_key.id
    assert limits.batch_cost(1) == 1
    assert limits.batch_cost(100) == 1
    assert limits.batch_cost(101) == 2
    assert limits.batch_cost(1000) == 10
    first = limits.check_batch(user, key, 10, 4, [])
    assert (first.count, first.over_hourly) == (4, False)
    assert limits.check_batch(user, key, 10, 4, []).count == 8
    refused = limits.check_batch(user, key, 10, 3, [])
    assert refused.over_hourly and refused.count == 8
    assert limits.current_counts(user, [key]) == {key: 8}
    assert not limits.check_batch(user, key, 10, 2, []).over_hourly
    assert limits.current_counts(user, [key]) == {key: 10}


def test_check_batch_claims_the_write_markers_all_or_none(alice, limiter_kind, settings):
    settings.THISDB_KEY_WRITES_PER_SECOND = 1
    user, key = alice.user.id, alice.api_key.id
    assert limits.write_slot(user, "B", "held") == 0
    refused = limits.check_batch(user, key, 100, 1, [("B", "free"), ("B", "held")])
    assert refused.write_wait_ms > 0
    assert limits.write_slot(user, "B", "free") == 0  # not claimed by the refused batch
    claimed = limits.check_batch(user, key, 100, 1, [("B", "x"), ("B", "y")])
    assert claimed.write_wait_ms == 0
    assert limits.write_slot(user, "B", "x") > 0
    assert limits.write_slot(user, "B", "y") > 0


def test_check_batch_is_blocked_by_a_marker_before_counting(alice, limiter_kind):
    user, key = alice.user.id, alice.api_key.id
    name = limits.block_key(user, "key", key)
    limits.block(name)
    decision = limits.check_batch(user, key, 100, 3, [], blocks=("other", name))
    assert decision.blocked_by == 1
    assert limits.current_counts(user, [key]) == {key: 0}


def test_a_transaction_runs_at_repeatable_read_and_the_connection_goes_back(transactional_db):
    """Outside any other transaction (as in a request), a transaction opens at REPEATABLE READ
    and the connection's next transaction is at the server's default again."""
    persona = Persona("rr")
    bucket = persona.new_bucket()
    seen: list[str] = []

    def spy(execute, sql, params, many, context):
        if sql.startswith("INSERT"):
            with context["connection"].cursor() as cursor:
                cursor.execute("SHOW transaction_isolation")
                seen.append(cursor.fetchone()[0])
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        txn(persona, bucket, [{"op": "set", "key": "k", "value": "v"}])
    with connection.cursor() as cursor:
        cursor.execute("SHOW transaction_isolation")
        after = cursor.fetchone()[0]
    assert seen == ["repeatable read"]
    assert after == "read committed"


def _count_plan(bucket: str, walk: bool) -> str:
    lo, hi = statements.prefix_range("")
    with transaction.atomic(), connection.cursor() as cursor:
        if walk:
            cursor.execute("SET LOCAL enable_bitmapscan = off")  # as count_prefixes does
        cursor.execute("EXPLAIN " + statements._COUNT_MANY_SQL, [bucket, COUNT_CAP + 1, [lo], [hi]])
        return "\n".join(row[0] for row in cursor.fetchall())


def test_a_count_walks_the_index_and_stops_at_its_cap(alice):
    """The range's bounds come from an array: PostgreSQL may plan a bitmap scan, which reads
    the whole range before the LIMIT (seen: 510 ms for a bucket of 1,000,000 keys among
    others, depending on the table's statistics); with bitmap scans off for the transaction
    it walks the index and stops at the cap."""
    big = alice.new_bucket()
    fill_keys(big, 1_000_000)
    plan = _count_plan(big, walk=True)
    assert "Index Scan using item_bucket_key" in plan and "Bitmap" not in plan
    # And count_prefixes does turn them off, inside a transaction or in one of its own.
    recorder = _Recorder()
    with connection.execute_wrapper(recorder):
        assert statements.count_prefixes(big, ["", "k00001"], COUNT_CAP) == [COUNT_CAP + 1, 100]
    assert recorder.sql[0] == "SET LOCAL enable_bitmapscan = off"


class _Recorder:
    def __init__(self):
        self.sql: list[str] = []

    def __call__(self, execute, sql, params, many, context):
        self.sql.append(sql)
        return execute(sql, params, many, context)
