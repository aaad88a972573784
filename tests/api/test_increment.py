"""PATCH /v1/<bucket>/<key>: increment (+N) or decrement (-N) a key (api.statements.increment)."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from api import statements
from api.models import Item

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
BAD_BODY = (
    b"an increment body must be exactly +N, -N or N, with no space or newline around it, e.g. +1"
)


def incr(persona, bucket: str, key: str, body: bytes | str, query: str = ""):
    return persona.client.patch(f"/v1/{bucket}/{key}{query}", body, content_type="text/plain")


def stored(bucket: str, key: str) -> bytes:
    return bytes(Item.objects.get(bucket_id=bucket, key=key).value)


def expires_at(bucket: str, key: str):
    return Item.objects.get(bucket_id=bucket, key=key).expires_at


def test_it_creates_an_absent_key_at_the_increment(alice, bucket):
    response = incr(alice, bucket, "hits", "+1")
    assert response.status_code == 200
    assert response.content == b"1"
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert stored(bucket, "hits") == b"1"


def test_it_adds_and_subtracts(alice, bucket):
    assert incr(alice, bucket, "n", "+5").content == b"5"
    assert incr(alice, bucket, "n", "-2").content == b"3"
    assert incr(alice, bucket, "n", "-10").content == b"-7"
    assert stored(bucket, "n") == b"-7"
    assert alice.client.get(f"/v1/{bucket}/n").content == b"-7"


def test_a_decrement_of_an_absent_key_goes_below_zero(alice, bucket):
    response = incr(alice, bucket, "n", "-3")
    assert response.status_code == 200
    assert response.content == b"-3"
    assert stored(bucket, "n") == b"-3"


def test_a_bare_number_counts_as_plus(alice, bucket):
    assert incr(alice, bucket, "n", "+1").content == b"1"
    assert incr(alice, bucket, "n", "7").content == b"8"
    assert stored(bucket, "n") == b"8"


@pytest.mark.parametrize("body", [" 1", "+1\n", "1 ", "\t-1", "1\r\n", "\n+1", "1_000"])
def test_a_number_with_anything_around_or_inside_it_is_400_and_unchanged(alice, bucket, body):
    """Exactly [+-]?[0-9]+: Python's int() would take spaces, a newline or an underscore."""
    alice.set(bucket, "n", "5")
    response = incr(alice, bucket, "n", body)
    assert response.status_code == 400
    assert response.content == BAD_BODY
    assert stored(bucket, "n") == b"5"


def test_a_stored_value_with_a_trailing_newline_still_counts(alice, bucket):
    """The stored value is the client's data (a file, or `echo 41 |`), not a command: surrounding
    whitespace is allowed there, and the increment writes the number back plain."""
    alice.set(bucket, "n", "41\n")
    assert incr(alice, bucket, "n", "+1").content == b"42"
    assert stored(bucket, "n") == b"42"


def test_it_increments_a_value_that_was_set(alice, bucket):
    alice.set(bucket, "n", "41")
    assert incr(alice, bucket, "n", "+1").content == b"42"


def test_json_format_of_an_increment(alice, bucket):
    response = incr(alice, bucket, "n", "+3", query="?format=json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"key": "n", "value": 3}


def test_an_expired_key_counts_from_zero(alice, bucket):
    alice.set(bucket, "n", "41")
    Item.objects.filter(bucket_id=bucket).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = incr(alice, bucket, "n", "+1")
    assert response.content == b"1"
    assert stored(bucket, "n") == b"1"
    assert expires_at(bucket, "n") > timezone.now()


def test_an_increment_with_ttl_zero_never_expires(alice, bucket):
    alice.set(bucket, "n", "1", query="?ttl=60")
    incr(alice, bucket, "n", "+1", query="?ttl=0")
    assert expires_at(bucket, "n") is None


def test_an_increment_applies_its_ttl(alice, bucket):
    before = timezone.now()
    incr(alice, bucket, "n", "+1", query="?ttl=3600")
    assert (
        before + timedelta(seconds=3599)
        <= expires_at(bucket, "n")
        <= timezone.now() + timedelta(seconds=3600)
    )


def test_an_increment_refreshes_expiry_with_the_default_ttl(alice):
    bucket = alice.new_bucket(default_ttl=60)
    alice.set(bucket, "n", "1", query="?ttl=0")
    assert expires_at(bucket, "n") is None

    incr(alice, bucket, "n", "+1")
    remaining = expires_at(bucket, "n") - timezone.now()
    assert timedelta(seconds=55) < remaining <= timedelta(seconds=60)


@pytest.mark.parametrize("value", [b"abc", b"\xff", b"1.5"], ids=["text", "binary", "decimal"])
def test_a_value_that_is_not_an_integer_is_400_and_unchanged(transactional_db, alice, value):
    # transactional_db: the refused statement would abort a test-wide transaction.
    bucket = alice.new_bucket()
    alice.set(bucket, "n", value)

    response = incr(alice, bucket, "n", "+1")
    assert response.status_code == 400
    assert response.content == b"the key's value is not an integer, so it cannot be incremented"
    assert stored(bucket, "n") == value


def test_a_value_that_is_not_an_integer_is_400_in_json(transactional_db, alice):
    bucket = alice.new_bucket()
    alice.set(bucket, "n", "abc")
    response = incr(alice, bucket, "n", "+1", query="?format=json")
    assert response.status_code == 400
    assert response.json() == {
        "error": "the key's value is not an integer, so it cannot be incremented"
    }


@pytest.mark.parametrize("body", ["", "abc", "++1", "1.0", "+ 1", "1e3", "0x10", "+", "-"])
def test_a_bad_body_is_400_and_nothing_is_created(alice, bucket, body):
    response = incr(alice, bucket, "n", body)
    assert response.status_code == 400
    assert response.content == BAD_BODY
    assert not Item.objects.filter(bucket_id=bucket).exists()


@pytest.mark.parametrize("body", ["+9223372036854775808", "-9223372036854775809", "9" * 30])
def test_a_body_past_int64_is_400_and_nothing_is_created(alice, bucket, body):
    response = incr(alice, bucket, "n", body)
    assert response.status_code == 400
    assert response.content == b"an increment must fit in a 64-bit integer"
    assert not Item.objects.filter(bucket_id=bucket).exists()


def test_the_int64_bounds_are_accepted_as_bodies(alice, bucket):
    assert incr(alice, bucket, "max", str(INT64_MAX)).content == str(INT64_MAX).encode()
    assert incr(alice, bucket, "min", str(INT64_MIN)).content == str(INT64_MIN).encode()


@pytest.mark.parametrize(
    ("start", "body"), [(INT64_MAX, "+1"), (INT64_MIN, "-1"), (1, str(INT64_MAX))]
)
def test_an_overflow_is_400_and_unchanged(transactional_db, alice, start, body):
    bucket = alice.new_bucket()
    alice.set(bucket, "n", str(start))

    response = incr(alice, bucket, "n", body)
    assert response.status_code == 400
    assert response.content == b"the result would not fit in a 64-bit integer"
    assert stored(bucket, "n") == str(start).encode()


def test_the_operation_called_directly(alice, bucket):
    assert statements.increment(bucket, "n", 5, 0).value == 5
    assert expires_at(bucket, "n") is None
    before = timezone.now()
    assert statements.increment(bucket, "n", -7, 3600).value == -2
    assert stored(bucket, "n") == b"-2"
    expires = expires_at(bucket, "n")
    assert before + timedelta(hours=1) <= expires <= timezone.now() + timedelta(hours=1)


def test_the_operation_without_create_leaves_an_absent_key_absent(alice, bucket):
    assert statements.increment(bucket, "n", 1, 0, create=False) is None
    assert not Item.objects.filter(bucket_id=bucket).exists()

    statements.set_value(bucket, "n", b"10", 0)
    assert statements.increment(bucket, "n", 1, 0, create=False).value == 11


def test_the_operation_raises_on_a_value_that_is_not_an_integer(transactional_db, alice):
    bucket = alice.new_bucket()
    statements.set_value(bucket, "n", b"abc", 0)
    with pytest.raises(statements.NotAnInteger, match="not an integer"):
        statements.increment(bucket, "n", 1, 0)
    assert stored(bucket, "n") == b"abc"


# --- Concurrency ------------------------------------------------------------------------------


def run_in_threads(count: int, target) -> None:
    """Run target(n) in `count` threads released together; each closes its DB connection."""
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(n: int) -> None:
        try:
            start.wait()
            target(n)
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_concurrent_increments_of_one_key_lose_none(transactional_db, alice):
    bucket = alice.new_bucket()
    seen: list[int] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def hammer(_n: int) -> None:
        client = Client(headers={"X-Api-Key": alice.key})
        mine = []
        for _ in range(100):
            response = client.patch(f"/v1/{bucket}/hits", "+1", content_type="text/plain")
            mine.append((response.status_code, int(response.content)))
        with lock:
            statuses.extend(status for status, _value in mine)
            seen.extend(value for _status, value in mine)

    run_in_threads(8, hammer)

    assert statuses == [200] * 800
    assert sorted(seen) == list(range(1, 801))  # each value returned exactly once
    assert stored(bucket, "hits") == b"800"


def test_concurrent_sets_of_different_keys_all_succeed(transactional_db, alice):
    bucket = alice.new_bucket()
    statuses: list[int] = []
    lock = threading.Lock()

    def write(n: int) -> None:
        client = Client(headers={"X-Api-Key": alice.key})
        response = client.post(f"/v1/{bucket}/key{n}", f"value{n}", content_type="text/plain")
        with lock:
            statuses.append(response.status_code)

    run_in_threads(8, write)

    assert statuses == [200] * 8
    values = dict(Item.objects.filter(bucket_id=bucket).values_list("key", "value"))
    assert {k: bytes(v) for k, v in values.items()} == {
        f"key{n}": f"value{n}".encode() for n in range(8)
    }
