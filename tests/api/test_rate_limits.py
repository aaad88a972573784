"""The hourly request limit per API key, its headers, and Redis being down (api.limits)."""

import logging
import random
import shutil
import subprocess
import sys
import threading
import time

import pytest
import redis
from django.conf import settings as django_settings
from django.test import Client
from redis.cluster import RedisCluster

from accounts.models import Account
from api import limits, redis_clients
from tests.conftest import Persona, token_client
from tests.serving import free_port


def next_hour(now: float) -> int:
    return int(now) - int(now) % 3600 + 3600


def test_every_api_response_carries_the_rate_limit_headers(alice, bucket):
    for response in (
        alice.set(bucket, "foo", "bar"),  # 200
        alice.client.get(f"/v1/{bucket}/nope"),  # 404
        alice.set(bucket, "foo", "bar", query="?ttl=x"),  # 400
        alice.client.get("/v1/AAAAAAAAAAAAAAAAAAAA"),  # 404, another's or no bucket
    ):
        assert response["X-RateLimit-Limit"] == "1000"
        assert int(response["X-RateLimit-Reset"]) == next_hour(time.time())
    # bucket creation (1) + the four requests above: each one counted once.
    assert response["X-RateLimit-Remaining"] == str(1000 - 5)


def test_the_headers_are_exposed_to_browsers(alice, bucket):
    response = alice.client.get(f"/v1/{bucket}", headers={"Origin": "https://app.example"})
    exposed = response["Access-Control-Expose-Headers"].lower()
    for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after"):
        assert name in exposed


def test_over_the_hourly_limit_is_429_with_retry_after(settings, db):
    settings.THISDB_REQUESTS_PER_HOUR = 3
    carol = Persona("carol")
    bucket = carol.new_bucket()  # request 1
    assert carol.set(bucket, "a", "1").status_code == 200  # 2
    assert carol.client.get(f"/v1/{bucket}/a").status_code == 200  # 3

    response = carol.set(bucket, "b", "2")
    assert response.status_code == 429
    assert b"rate limit reached: 3 requests per hour" in response.content
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 3600
    assert abs(time.time() + retry_after - next_hour(time.time())) <= 2
    assert response["X-RateLimit-Remaining"] == "0"
    assert carol.client.get(f"/v1/{bucket}/b").status_code == 429  # b was not written either
    assert not carol.user.buckets.get().items.filter(key="b").exists()


def test_over_the_limit_an_invalid_request_is_429_too(settings, db):
    settings.THISDB_REQUESTS_PER_HOUR = 1
    carol = Persona("carol")
    carol.new_bucket()
    assert carol.client.get("/v1/AAAAAAAAAAAAAAAAAAAA/x").status_code == 429


def test_the_limit_is_per_api_key(settings, db):
    settings.THISDB_REQUESTS_PER_HOUR = 2
    carol = Persona("carol")
    bucket = carol.new_bucket()
    carol.set(bucket, "a", "1")
    assert carol.set(bucket, "a", "2").status_code == 429
    from accounts.models import ApiKey

    _, second_key = ApiKey.objects.create_key(carol.user, "second")
    other = Client(headers={"X-Api-Key": second_key})
    assert other.get(f"/v1/{bucket}/a").status_code == 200


def test_staff_can_change_an_accounts_limit(db):
    carol = Persona("carol")
    Account.objects.filter(user=carol.user).update(requests_per_hour=2)
    carol.new_bucket()
    response = carol.client.post("/v1/")
    assert response["X-RateLimit-Limit"] == "2"
    assert carol.client.post("/v1/").status_code == 429


def test_a_plan_sets_the_limit_and_the_account_overrides_it(db):
    from accounts.models import Plan

    pro = Plan.objects.create(name="pro", requests_per_hour=5000)
    carol = Persona("carol")
    Account.objects.filter(user=carol.user).update(plan=pro)
    assert carol.client.post("/v1/")["X-RateLimit-Limit"] == "5000"

    dave = Persona("dave")
    Account.objects.filter(user=dave.user).update(plan=pro, requests_per_hour=7)
    assert dave.client.post("/v1/")["X-RateLimit-Limit"] == "7"


def test_the_default_limit_comes_from_the_environment():
    script = "import django; django.setup(); from django.conf import settings; "
    script += "print(settings.THISDB_REQUESTS_PER_HOUR)"
    env = {"THISDB_REQUESTS_PER_HOUR": "250", "DJANGO_SETTINGS_MODULE": "thisdb_site.settings"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        cwd=django_settings.BASE_DIR,
    )
    assert result.stdout.strip() == "250", result.stderr


def test_token_requests_count_against_the_key_that_made_the_token(settings, db):
    settings.THISDB_REQUESTS_PER_HOUR = 4
    carol = Persona("carol")
    bucket = carol.new_bucket()  # 1
    token = carol.token(bucket, "user:")  # 2
    reader = token_client(token)
    assert reader.get(f"/v1/{bucket}/user:x").status_code == 404  # 3 (no such key)
    response = reader.get(f"/v1/{bucket}")  # 4
    assert response.status_code == 200
    assert response["X-RateLimit-Remaining"] == "0"
    assert carol.client.get(f"/v1/{bucket}").status_code == 429  # the key's 5th


def test_write_limit_429_carries_retry_after(settings, alice, bucket):
    settings.THISDB_KEY_WRITES_PER_SECOND = 1
    alice.set(bucket, "k", "1")
    response = alice.set(bucket, "k", "2")
    assert response.status_code == 429
    assert response["Retry-After"] == "1"
    assert "X-RateLimit-Remaining" in response


@pytest.mark.django_db(transaction=True)
def test_sixteen_threads_firing_1100_requests_at_1000_get_exactly_1000(settings):
    settings.THISDB_REQUESTS_PER_HOUR = 1000
    carol = Persona("carol")
    bucket = carol.new_bucket()  # request 1 of 1000
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def fire(count: int) -> None:
        from django.db import connection

        client = Client(headers={"X-Api-Key": carol.key})
        start.wait()
        mine = [client.get(f"/v1/{bucket}").status_code for _ in range(count)]
        with lock:
            statuses.extend(mine)
        connection.close()

    counts = [69] * 12 + [68] * 4  # 1,100 requests
    threads = [threading.Thread(target=fire, args=(n,)) for n in counts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(statuses) == 1100
    assert statuses.count(200) == 999  # + the bucket creation = exactly 1000
    assert statuses.count(429) == 101


def test_no_counter_in_redis_is_left_without_an_expiry(settings, alice, bucket):
    settings.THISDB_KEY_WRITES_PER_SECOND = 1
    alice.set(bucket, "a", "1")
    alice.set(bucket, "a", "2")  # refused: marker exists
    alice.client.get(f"/v1/{bucket}")
    client = redis_clients.connect(django_settings.REDIS_URL)
    names = list(client.scan_iter(match=f"{django_settings.THISDB_REDIS_PREFIX}:*"))
    assert len(names) >= 3  # the hour's counter, the hour's key set, the write marker
    for name in names:
        assert client.pttl(name) > 0, name


def test_a_changed_prefix_names_the_counters_anew(settings, alice, bucket):
    """The script's keys are made once an hour (api.limits.script_call): a new prefix must
    not meet the names made under the old one."""
    before = alice.set(bucket, "a", "1")
    settings.THISDB_REDIS_PREFIX = f"{django_settings.THISDB_REDIS_PREFIX}-renamed"
    after = alice.set(bucket, "b", "1")
    assert before.status_code == after.status_code == 200
    # Counted from 1 again under the new prefix: bucket creation and the first set were before.
    assert int(before["X-RateLimit-Remaining"]) == 1000 - 2
    assert after["X-RateLimit-Remaining"] == str(1000 - 1)
    client = redis_clients.connect(django_settings.REDIS_URL)
    hour = limits.hour_start(time.time())
    assert client.get(limits.counter_key(alice.user.pk, alice.api_key.pk, hour)) == b"1"
    client.delete(*client.keys(f"{settings.THISDB_REDIS_PREFIX}:*"))


# --- Redis unreachable -------------------------------------------------------------------


def test_with_redis_unreachable_the_api_serves_from_postgresql(settings, alice, bucket, caplog):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings.THISDB_KEY_WRITES_PER_SECOND = 1
    limits.reset()
    with caplog.at_level(logging.WARNING, logger="api.limits"):
        assert alice.set(bucket, "foo", "one").status_code == 200
        response = alice.set(bucket, "foo", "two")  # limits off: no 429, and never a 500
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response  # nothing counted, so no figures to claim
        assert alice.client.get(f"/v1/{bucket}/foo").content == b"two"
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1  # logged at most once a minute


@pytest.fixture
def private_redis():
    """A Redis server of this test's own, which the test may stop and start again."""
    port = free_port()
    command = [
        shutil.which("redis-server") or "/usr/bin/redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    servers = []

    def start():
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        servers.append(server)
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop():
        servers[-1].terminate()
        servers[-1].wait(timeout=10)

    start()
    yield port, start, stop
    for server in servers:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=10)


def test_limits_resume_within_seconds_when_redis_returns(settings, db, private_redis):
    port, start, stop = private_redis
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    settings.REDIS_CLUSTER = False  # a plain Redis of the test's own
    settings.THISDB_REQUESTS_PER_HOUR = 3
    limits.reset()
    carol = Persona("carol")
    bucket = carol.new_bucket()  # 1
    assert carol.client.get(f"/v1/{bucket}").status_code == 200  # 2

    stop()
    for _ in range(5):  # limits off while Redis is away
        assert carol.client.get(f"/v1/{bucket}").status_code == 200

    start()  # a new, empty Redis: the counter starts again
    deadline = time.monotonic() + limits.REDIS_RETRY_SECONDS + 5
    while time.monotonic() < deadline:
        response = carol.client.get(f"/v1/{bucket}")
        if "X-RateLimit-Limit" in response:
            break
        time.sleep(0.2)
    assert response["X-RateLimit-Limit"] == "3"
    carol.client.get(f"/v1/{bucket}")
    carol.client.get(f"/v1/{bucket}")
    assert carol.client.get(f"/v1/{bucket}").status_code == 429


def test_without_redis_url_the_in_process_limiter_counts(settings, db):
    settings.REDIS_URL = ""
    settings.THISDB_REQUESTS_PER_HOUR = 2
    limits.reset()
    carol = Persona("carol")
    bucket = carol.new_bucket()
    assert carol.client.get(f"/v1/{bucket}")["X-RateLimit-Remaining"] == "0"
    assert carol.client.get(f"/v1/{bucket}").status_code == 429


def test_wrong_keys_from_one_address_are_refused_with_429(settings, bucket):
    settings.THISDB_AUTH_FAILURES_RATE = "3/m"
    # An address of its own, so no other test's failures count here.
    guesser = Client(REMOTE_ADDR=f"127.{random.randrange(1, 250)}.{random.randrange(1, 250)}.9")
    statuses = [
        guesser.get(f"/v1/{bucket}", headers={"X-Api-Key": "tdb_guess"}).status_code
        for _ in range(4)
    ]
    assert statuses == [403, 403, 403, 429]


@pytest.mark.parametrize("key", ["X-Api-Key", "X-Token"])
def test_a_wrong_key_from_a_server_without_client_addresses_is_403(bucket, key):
    # A server on a Unix socket gives no REMOTE_ADDR: still a 403, never a 500.
    response = Client(REMOTE_ADDR="").get(f"/v1/{bucket}", headers={key: "wrong"})
    assert response.status_code == 403


def redis_calls(client) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name: figures["calls"] for name, figures in stats.items()}


@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_a_request_makes_one_redis_round_trip(settings, alice, bucket, method):
    """The hourly count and the key's write slot are one script call: one round trip."""
    settings.THISDB_KEY_WRITES_PER_SECOND = 0
    alice.set(bucket, "warm", "1")  # loads the script into Redis (first EVALSHA falls back)
    settings.THISDB_KEY_WRITES_PER_SECOND = 1
    client = redis_clients.connect(django_settings.REDIS_URL)
    if isinstance(client, RedisCluster):  # the statistics of the master of alice's slot
        client = client.get_redis_connection(client.get_node_from_key(f"{{{alice.user.pk}}}"))
    alice.set(bucket, "k", "1")
    time.sleep(1.05)  # the write slot of k is free again
    path = f"/v1/{bucket}/k"

    before = redis_calls(client)
    if method == "get":
        response = alice.client.get(path)
    else:
        body = b"+1" if method == "patch" else b"2"
        response = getattr(alice.client, method)(path, body, content_type="text/plain")
    after = redis_calls(client)

    assert response.status_code == 200
    changed = {name: after[name] - before.get(name, 0) for name in after}
    changed = {name: n for name, n in changed.items() if n and name != "cmdstat_info"}
    # One EVALSHA from the client; Redis also counts the commands the script ran inside it:
    # one EXISTS of the revoked-key and suspended-account markers, the hour's INCR, and for a
    # write the SET NX of the key's write slot.
    inside = {"cmdstat_exists": 1, "cmdstat_incr": 1}
    if method != "get":
        inside["cmdstat_set"] = 1
    assert changed == {"cmdstat_evalsha": 1, **inside}


def test_a_406_is_counted_and_carries_the_headers(alice, bucket):
    response = alice.client.get(f"/v1/{bucket}?format=xml")
    assert response.status_code == 406
    assert response["X-RateLimit-Remaining"] == str(1000 - 2)  # the bucket's creation, this


def test_a_redis_that_forgot_the_limit_script_is_given_it_again(alice, bucket):
    """A restarted Redis has no scripts: the request that finds it so loads the script, runs it
    and is counted like any other."""
    limiter = limits.limiter()
    assert isinstance(limiter, limits.RedisLimiter)
    before = int(alice.client.get(f"/v1/{bucket}")["X-RateLimit-Remaining"])
    limiter.client.script_flush()
    assert limiter.client.script_exists(limiter.script.sha) == [False]

    response = alice.client.get(f"/v1/{bucket}")
    assert response.status_code == 200
    assert int(response["X-RateLimit-Remaining"]) == before - 1
    assert limiter.client.script_exists(limiter.script.sha) == [True]


def test_a_redis_that_stops_answering_costs_a_request_its_timeout_once(settings, db, private_redis):
    """A Redis that accepts but does not answer (paused, overloaded) is given
    REDIS_TIMEOUT_SECONDS: the request is then served without limits, and so are the next ones
    until Redis is tried again, without waiting."""
    port, _, _ = private_redis
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    settings.REDIS_CLUSTER = False  # a plain Redis of the test's own
    limits.reset()
    carol = Persona("carol")
    bucket = carol.new_bucket()
    assert "X-RateLimit-Limit" in carol.client.get(f"/v1/{bucket}")  # counted: Redis answers
    redis.Redis(port=port).client_pause(10_000)  # ms; the client's connection is open already
    started = time.monotonic()
    response = carol.client.get(f"/v1/{bucket}")
    waited = time.monotonic() - started
    assert response.status_code == 200
    assert "X-RateLimit-Limit" not in response  # served without limits
    assert limits.REDIS_TIMEOUT_SECONDS <= waited < 1, waited
    started = time.monotonic()
    assert carol.client.get(f"/v1/{bucket}").status_code == 200
    assert time.monotonic() - started < limits.REDIS_TIMEOUT_SECONDS  # not asked again yet


def test_a_restarted_redis_counts_the_next_request(settings, db, private_redis):
    """The limiter's pooled connection died with the old Redis: the pool opens a new one as it
    gives it out, and the script, which the new Redis does not hold, is loaded again."""
    port, start, stop = private_redis
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    settings.REDIS_CLUSTER = False  # a plain Redis of the test's own
    limits.reset()
    carol = Persona("carol")
    bucket = carol.new_bucket()  # 1
    assert carol.client.get(f"/v1/{bucket}")["X-RateLimit-Remaining"] == str(1000 - 2)
    stop()
    start()  # empty: the hour's counter starts again
    response = carol.client.get(f"/v1/{bucket}")
    assert response["X-RateLimit-Remaining"] == str(1000 - 1)
