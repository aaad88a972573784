"""POST /v1/<bucket> with a JSON object: a transaction, over HTTP (the engine's own cases are in
test_transactions_engine.py): its answers, how it is counted and limited, and transfers between
balances by many clients at once that never change the total."""

import json
import random
import threading
import time

import pytest
from django.db import connection
from django.test import Client

from api import principals
from api.models import Item
from tests.conftest import token_client

JSON = "application/json"


def post(client, bucket: str, body, query: str = "?format=json"):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(f"/v1/{bucket}{query}", data, content_type=JSON)


def stored(bucket: str, key: str) -> bytes | None:
    item = Item.objects.filter(bucket_id=bucket, key=key).first()
    return None if item is None else bytes(item.value)


def test_a_transaction_answers_each_op_in_order(alice, bucket):
    alice.set(bucket, "x", "hello")
    response = post(
        alice.client,
        bucket,
        {
            "ops": [
                {"op": "set", "key": "a", "value": "text", "ttl": 60},
                {"op": "set", "key": "img", "value": "aGVsbG8=", "encoding": "base64"},
                {"op": "increment", "key": "n", "by": 5},
                {"op": "delete", "key": "old"},
                {"op": "get", "key": "x"},
                {"op": "count", "prefix": "i"},
            ]
        },
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith(JSON)
    answer = response.json()
    assert answer["ok"] is True
    a, img, n, old, x, count = answer["results"]
    assert a["key"] == "a" and int(a["version"]) > 0
    assert img["key"] == "img" and stored(bucket, "img") == b"hello"
    assert (n["value"], int(n["version"]) > int(a["version"])) == (5, True)
    assert old == {"key": "old", "deleted": False}
    assert x["value"] == "hello" and x["version"] == alice.client.get(f"/v1/{bucket}/x")[
        "ETag"
    ].strip('"')
    assert count["count"] == 1 and count["prefix"] == "i"
    # The versions answered are those a GET answers now.
    assert alice.client.get(f"/v1/{bucket}/a")["ETag"] == f'"{a["version"]}"'


def test_a_failed_check_is_409_with_the_versions_and_nothing_applied(alice, bucket):
    tag = alice.set(bucket, "a", "1")["ETag"].strip('"')
    response = post(
        alice.client,
        bucket,
        {
            "checks": [
                {"key": "a", "version": "1" if tag != "1" else "2"},
                {"key": "b", "version": None},
            ],
            "ops": [{"op": "set", "key": "b", "value": "new"}],
        },
    )
    assert response.status_code == 409
    assert response.json() == {"ok": False, "failed": [0], "versions": {"a": tag}}
    assert stored(bucket, "b") is None


def test_the_answer_is_json_in_any_format(alice, bucket):
    response = post(alice.client, bucket, {"ops": [{"op": "get", "key": "x"}]}, query="")
    assert response.status_code == 200
    assert json.loads(response.content) == {"ok": True, "results": [{"key": "x", "value": None}]}


@pytest.mark.parametrize(
    "body, says",
    [
        (b"not json", "JSON"),
        (b"[1, 2]", "object"),
        (json.dumps({"ops": [{"op": "nope", "key": "k"}]}), "ops[0]"),
        (
            json.dumps(
                {"ops": [{"op": "set", "key": "k", "value": "1"}, {"op": "increment", "key": "k"}]}
            ),
            "ops[1]",
        ),
    ],
)
def test_a_bad_body_is_400_naming_the_place_and_nothing_is_applied(alice, bucket, body, says):
    response = post(alice.client, bucket, body)
    assert response.status_code == 400
    assert says in response.json()["error"]
    assert not Item.objects.filter(bucket_id=bucket).exists()


def test_another_accounts_bucket_is_404(alice, bob, bucket):
    response = post(bob.client, bucket, {"ops": [{"op": "set", "key": "k", "value": "v"}]})
    assert response.status_code == 404
    assert stored(bucket, "k") is None


def test_a_token_must_cover_every_key_with_the_right_permission(alice, bucket):
    reader = token_client(alice.token(bucket, "pub:", "read"))
    assert post(reader, bucket, {"ops": [{"op": "get", "key": "pub:a"}]}).status_code == 200
    refused = post(
        reader,
        bucket,
        {"ops": [{"op": "get", "key": "pub:a"}, {"op": "set", "key": "pub:b", "value": "v"}]},
    )
    assert refused.status_code == 403 and "ops[1]" in refused.json()["error"]
    outside = post(reader, bucket, {"checks": [{"key": "secret", "version": None}], "ops": []})
    assert outside.status_code == 403 and "checks[0]" in outside.json()["error"]
    assert stored(bucket, "pub:b") is None


def test_a_transaction_counts_one_request_per_100_ops(alice, bucket):
    def remaining(response) -> int:
        return int(response["X-RateLimit-Remaining"])

    before = remaining(alice.client.get(f"/v1/{bucket}/none"))
    small = post(alice.client, bucket, {"ops": [{"op": "get", "key": "k"}] * 100})
    assert remaining(small) == before - 1
    big = post(alice.client, bucket, {"ops": [{"op": "get", "key": "k"}] * 101})
    assert remaining(big) == before - 3


def test_a_transaction_larger_than_the_hour_has_left_is_refused_whole(alice, bucket, settings):
    settings.THISDB_REQUESTS_PER_HOUR = 3
    principals.forget_all()  # the bucket's creation cached alice's lookup with the old figure
    alice.client.get(f"/v1/{bucket}/none")  # 2 used (with the bucket's creation), 1 left
    ops = [{"op": "set", "key": f"k{n}", "value": "v"} for n in range(300)]  # counts 3
    response = post(alice.client, bucket, {"ops": ops})
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert "nothing was applied" in response.json()["error"]
    assert not Item.objects.filter(bucket_id=bucket).exists()
    # Nothing was counted: a transaction of one request still fits.
    assert post(alice.client, bucket, {"ops": ops[:100]}).status_code == 200


def test_a_key_written_within_the_second_refuses_the_whole_transaction(alice, bucket, settings):
    settings.THISDB_KEY_WRITES_PER_SECOND = 1
    assert alice.set(bucket, "busy", "1").status_code == 200
    response = post(
        alice.client,
        bucket,
        {
            "ops": [
                {"op": "set", "key": "free", "value": "v"},
                {"op": "set", "key": "busy", "value": "2"},
            ]
        },
    )
    assert response.status_code == 429 and response["Retry-After"] == "1"
    assert stored(bucket, "free") is None and stored(bucket, "busy") == b"1"
    # None of its keys was claimed: "free" can be written at once.
    assert alice.set(bucket, "free", "v").status_code == 200


def test_a_body_over_the_transaction_limit_is_413(alice, bucket, settings):
    settings.THISDB_TRANSACTION_MAX_BYTES = 100
    response = post(alice.client, bucket, {"ops": [{"op": "set", "key": "k", "value": "v" * 200}]})
    assert response.status_code == 413


TRANSFER_SECONDS = 30  # as long as the transfers run (a duration, not a timed assertion)
ACCOUNTS = [f"balance:{n}" for n in range(10)]
START = 1000


def test_concurrent_transfers_never_change_the_total(transactional_db, alice, settings):
    """16 clients make random transfers between 10 balances for 30 s, each a transaction that
    checks the versions it read; after every commit a client reads all balances in one
    transaction: the total is always the same and no balance is ever below zero."""
    settings.THISDB_REQUESTS_PER_HOUR = 10_000_000
    bucket = alice.new_bucket()
    post(
        alice.client,
        bucket,
        {"ops": [{"op": "set", "key": k, "value": str(START)} for k in ACCOUNTS]},
    )
    problems: list[str] = []
    commits = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + TRANSFER_SECONDS

    def client_loop(seed: int) -> None:
        rng = random.Random(seed)
        client = Client(headers={"X-Api-Key": alice.key})
        try:
            while time.monotonic() < deadline and not problems:
                src, dst = rng.sample(ACCOUNTS, 2)
                read = post(
                    client, bucket, {"ops": [{"op": "get", "key": src}, {"op": "get", "key": dst}]}
                )
                a, b = read.json()["results"]
                amount = rng.randint(1, 200)
                if int(a["value"]) < amount:
                    continue  # never below zero: this client does not overdraw
                answer = post(
                    client,
                    bucket,
                    {
                        "checks": [
                            {"key": src, "version": a["version"]},
                            {"key": dst, "version": b["version"]},
                        ],
                        "ops": [
                            {"op": "set", "key": src, "value": str(int(a["value"]) - amount)},
                            {"op": "set", "key": dst, "value": str(int(b["value"]) + amount)},
                        ],
                    },
                )
                if answer.status_code in (409, 503):
                    continue  # someone moved first: read again
                if answer.status_code != 200:
                    problems.append(f"{answer.status_code} {answer.content!r}")
                    return
                everything = post(
                    client, bucket, {"ops": [{"op": "get", "key": k} for k in ACCOUNTS]}
                )
                balances = [int(r["value"]) for r in everything.json()["results"]]
                if sum(balances) != START * len(ACCOUNTS) or min(balances) < 0:
                    problems.append(f"after a commit: {balances}")
                with lock:
                    commits[0] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=client_loop, args=(seed,)) for seed in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert problems == []
    assert commits[0] > 50  # the clients really did transfer
    final = [int(stored(bucket, k)) for k in ACCOUNTS]
    assert sum(final) == START * len(ACCOUNTS) and min(final) >= 0
