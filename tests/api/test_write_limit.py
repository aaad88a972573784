"""One write per second per key on POST/PUT/PATCH/DELETE /v1/<bucket>/<key> (api.limits), set by
THISDB_KEY_WRITES_PER_SECOND (0 = off)."""

import os
import subprocess
import sys
import threading
import time

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client

from api import limits
from api.models import Item

LIMITED = b"this key was written less than a second ago: keys take one write per second"


@pytest.fixture
def limited(settings):
    """The per-key write limit of production: one write per second (Redis of REDIS_URL)."""
    settings.THISDB_KEY_WRITES_PER_SECOND = 1
    assert django_settings.REDIS_URL  # these tests are about the real Redis limiter


def stored(bucket: str, key: str) -> bytes | None:
    item = Item.objects.filter(bucket_id=bucket, key=key).first()
    return None if item is None else bytes(item.value)


def write(persona, bucket: str, key: str, how: str, value: str = "2"):
    url = f"/v1/{bucket}/{key}"
    if how == "set":
        return persona.client.post(url, value, content_type="text/plain")
    if how == "put":
        return persona.client.put(url, value, content_type="text/plain")
    if how == "increment":
        return persona.client.patch(url, "+1", content_type="text/plain")
    assert how == "delete"
    return persona.client.delete(url)


@pytest.mark.parametrize("how", ["set", "put", "increment", "delete"])
def test_a_second_write_right_after_the_first_is_429(limited, alice, bucket, how):
    assert alice.set(bucket, "k", "1").status_code == 200

    response = write(alice, bucket, "k", how)
    assert response.status_code == 429
    assert response["Retry-After"] == "1"
    assert response.content == LIMITED
    assert stored(bucket, "k") == b"1"  # neither written, incremented nor deleted


def test_the_429_message_in_json(limited, alice, bucket):
    alice.set(bucket, "k", "1")
    response = alice.client.post(f"/v1/{bucket}/k?format=json", "2", content_type="text/plain")
    assert response.status_code == 429
    assert response.json() == {"error": LIMITED.decode()}


def test_an_increment_takes_the_keys_write_slot(limited, alice, bucket):
    assert write(alice, bucket, "n", "increment").status_code == 200
    response = write(alice, bucket, "n", "set", "100")
    assert response.status_code == 429
    assert stored(bucket, "n") == b"1"


def test_another_key_of_the_bucket_is_not_limited(limited, alice, bucket):
    assert alice.set(bucket, "a", "1").status_code == 200
    assert alice.set(bucket, "b", "1").status_code == 200
    assert write(alice, bucket, "c", "increment").status_code == 200


def test_the_same_key_in_another_bucket_is_not_limited(limited, alice, bob, bucket):
    assert alice.set(bucket, "k", "1").status_code == 200
    assert alice.set(alice.new_bucket(), "k", "1").status_code == 200
    assert bob.set(bob.new_bucket(), "k", "1").status_code == 200


def test_a_write_passes_again_after_a_second(limited, alice, bucket):
    assert alice.set(bucket, "k", "1").status_code == 200
    assert alice.set(bucket, "k", "2").status_code == 429
    time.sleep(1.05)
    assert alice.set(bucket, "k", "3").status_code == 200
    assert stored(bucket, "k") == b"3"


def test_reads_are_not_limited(limited, alice, bucket):
    assert alice.set(bucket, "k", "1").status_code == 200
    for _ in range(3):
        assert alice.client.get(f"/v1/{bucket}/k").status_code == 200
        assert alice.client.get(f"/v1/{bucket}").status_code == 200


def test_reads_do_not_take_the_write_slot(limited, alice, bucket):
    alice.client.get(f"/v1/{bucket}/k")
    assert alice.set(bucket, "k", "1").status_code == 200


def test_with_zero_nothing_is_limited(settings, alice, bucket):
    settings.THISDB_KEY_WRITES_PER_SECOND = 0
    for how in ("set", "set", "increment", "increment", "delete", "set"):
        assert write(alice, bucket, "k", how).status_code == 200, how
    assert stored(bucket, "k") == b"2"


def test_a_higher_rate_shortens_the_window(settings, alice, bucket):
    settings.THISDB_KEY_WRITES_PER_SECOND = 4  # one write per 250 ms
    assert alice.set(bucket, "k", "1").status_code == 200
    assert alice.set(bucket, "k", "2").status_code == 429
    time.sleep(0.3)
    assert alice.set(bucket, "k", "3").status_code == 200


@pytest.mark.parametrize(
    ("how", "query", "body"),
    [
        ("set", "?ttl=abc", "x"),  # bad ttl
        ("increment", "", "abc"),  # bad increment body
        ("set", "", "v" * (1024 * 1024 + 1)),  # 413: over the value limit
    ],
    ids=["bad-ttl", "bad-delta", "too-large"],
)
def test_a_refused_write_does_not_take_the_slot(limited, alice, bucket, how, query, body):
    url = f"/v1/{bucket}/k{query}"
    if how == "set":
        refused = alice.client.post(url, body, content_type="text/plain")
    else:
        refused = alice.client.patch(url, body, content_type="text/plain")
    assert refused.status_code in (400, 413)

    assert alice.set(bucket, "k", "good").status_code == 200
    assert stored(bucket, "k") == b"good"


@pytest.mark.django_db(transaction=True)
def test_racing_writes_of_one_key_let_exactly_one_through(limited, alice):
    bucket = alice.new_bucket()
    count = 8
    start = threading.Barrier(count)
    results: list[tuple[int, str, str | None]] = []
    lock = threading.Lock()

    def fire(n: int) -> None:
        try:
            client = Client(headers={"X-Api-Key": alice.key})
            start.wait(timeout=30)
            response = client.post(f"/v1/{bucket}/k", f"v{n}", content_type="text/plain")
            with lock:
                results.append((response.status_code, f"v{n}", response.get("Retry-After")))
        finally:
            connection.close()

    threads = [threading.Thread(target=fire, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(status for status, _value, _retry in results)
    assert statuses == [200] + [429] * (count - 1)
    [winner] = [value for status, value, _retry in results if status == 200]
    assert stored(bucket, "k") == winner.encode()
    assert all(retry == "1" for status, _value, retry in results if status == 429)


def test_the_in_process_fallback_applies_the_limit_without_redis(settings, alice, bucket):
    settings.REDIS_URL = ""
    settings.THISDB_KEY_WRITES_PER_SECOND = 1
    limits.reset()
    assert isinstance(limits.limiter(), limits.MemoryLimiter)

    assert alice.set(bucket, "k", "1").status_code == 200
    response = alice.set(bucket, "k", "2")
    assert response.status_code == 429
    assert response["Retry-After"] == "1"
    assert stored(bucket, "k") == b"1"
    assert alice.set(bucket, "other", "1").status_code == 200
    time.sleep(1.05)
    assert alice.set(bucket, "k", "3").status_code == 200


# --- The environment variable -----------------------------------------------------------------

SHOW_SETTING = (
    "import django; django.setup(); from django.conf import settings; "
    "print(settings.THISDB_KEY_WRITES_PER_SECOND)"
)


def run_settings(value: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "thisdb_site.settings"}
    env.pop("THISDB_KEY_WRITES_PER_SECOND", None)
    if value is not None:
        env["THISDB_KEY_WRITES_PER_SECOND"] = value
    return subprocess.run(
        [sys.executable, "-c", SHOW_SETTING],
        env=env,
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(("value", "expected"), [("3", "3"), ("0", "0"), (None, "1"), ("", "1")])
def test_the_env_var_sets_the_limit(value, expected):
    result = run_settings(value)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


@pytest.mark.parametrize("value", ["x", "1.5", "-1"])
def test_an_invalid_env_var_fails_at_start_up(value):
    result = run_settings(value)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "THISDB_KEY_WRITES_PER_SECOND must be" in result.stderr
