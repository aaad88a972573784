"""Faults under a steady load through nginx (threads writing new keys and reading back the ones
acknowledged, tests.cluster.topology.Load): every answer counted, every write answered 200
checked afterwards on the primary. Each test puts the topology back as it found it."""

import os
import signal
import subprocess
import time

import httpx
import psycopg
import pytest
from redis.cluster import RedisCluster

from tests.cluster.topology import (
    CLUSTER_DIR,
    NGINX,
    PRIMARY,
    PROJECT,
    WEB_PORTS,
    Account,
    Load,
    cluster,
    manage,
    new_account,
    new_bucket,
    platform_env,
    stored,
)

# The load's account may send far more than the spec's 1,000 requests an hour (raised for it,
# as staff would): the faults are the subject here, not the limit.
LOAD_REQUESTS_PER_HOUR = 10_000_000
# Budgets: a Redis master is replaced within 2 s of node timeout plus the election
# (deploy/cluster/redis-cluster.sh: about 4.5 s measured); Patroni promotes the synchronous
# standby when the leader key's 10 s TTL runs out (deploy/cluster/patroni.sh).
REDIS_BACK_SECONDS = 15
POSTGRES_BACK_SECONDS = 30


@pytest.fixture(scope="module")
def load_account(topology) -> Account:
    return new_account(requests_per_hour=LOAD_REQUESTS_PER_HOUR)


def assert_every_acknowledged_write_stored(load: Load, bucket: str) -> None:
    assert load.acknowledged, "no write was acknowledged"
    found = stored(bucket)
    lost = [key for key, value in load.acknowledged.items() if found.get(key) != value]
    assert lost == [], f"{len(lost)} acknowledged writes lost of {len(load.acknowledged)}"
    assert load.wrong_reads == []


def user_id(account: Account) -> int:
    with psycopg.connect(PRIMARY) as connection:
        row = connection.execute(
            "SELECT id FROM auth_user WHERE username = %s", [account.username]
        ).fetchone()
    assert row is not None
    return row[0]


def patroni_members() -> list[dict]:
    for port in (8441, 8442):
        try:
            return httpx.get(f"http://127.0.0.1:{port}/cluster", timeout=2).json()["members"]
        except httpx.HTTPError:
            continue
    raise AssertionError("no Patroni REST API answers")


def role_of(role: str) -> str | None:
    return next((m["name"] for m in patroni_members() if m["role"] == role), None)


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        time.sleep(0.2)


def test_a_redis_master_killed_its_replica_takes_over_without_a_5xx(topology, load_account):
    bucket = new_bucket(load_account)
    probe = new_account(requests_per_hour=LOAD_REQUESTS_PER_HOUR)
    redis = RedisCluster.from_url(platform_env()["REDIS_URL"])
    # The master holding the probe's keys (its user id is their hash tag, api.limits).
    master = redis.get_node_from_key(f"thisdb:{{{user_id(probe)}}}:rq")
    port = master.port
    pid = int((CLUSTER_DIR / "redis" / str(port) / "redis.pid").read_text())
    probes: list[tuple[float, int, bool]] = []  # (when, status, counted)

    with Load(load_account, bucket) as load, httpx.Client(headers=probe.headers) as client:
        load.wait_for_answers(200)
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        # The probe's requests say whether they were counted (X-RateLimit-Remaining): while
        # their slot has no master, limits fail open and no figure comes back.
        while time.monotonic() - killed_at < REDIS_BACK_SECONDS + 5:
            answer = client.get(f"{NGINX}/v1/")
            counted = "x-ratelimit-remaining" in answer.headers
            probes.append((time.monotonic(), answer.status_code, counted))
            time.sleep(0.1)
        load.wait_for_answers(200)

    subprocess.run(
        ["bash", "deploy/cluster/redis-cluster.sh", "start", str(CLUSTER_DIR / "redis"), "7000"],
        cwd=PROJECT,
        check=True,
        capture_output=True,
    )
    statuses = load.statuses()
    assert set(statuses) == {200}, statuses
    assert {status for _, status, _ in probes} == {200}
    uncounted = [when for when, _, counted in probes if not counted]
    back = (max(uncounted) - killed_at) if uncounted else 0.0
    print(f"\nRedis master :{port} killed: limits counted again after {back:.1f} s; {statuses}")
    assert back < REDIS_BACK_SECONDS
    assert probes[-1][2], "the probe's last requests were not counted"
    assert_every_acknowledged_write_stored(load, bucket)


@pytest.mark.quick
def test_a_web_node_stopped_loses_no_read_through_nginx(topology, load_account):
    bucket = new_bucket(load_account)
    with Load(load_account, bucket) as load:
        load.wait_for_answers(200)
        stopped_at = time.monotonic()
        cluster("web-stop", str(WEB_PORTS[0]))
        load.wait_for_answers(300)
        cluster("web-start", str(WEB_PORTS[0]))
        load.wait_for_answers(200)

    reads, writes = load.statuses("GET"), load.statuses("POST")
    print(f"\nweb node :{WEB_PORTS[0]} stopped and started: GET {reads}, POST {writes}")
    assert set(reads) == {200}, reads
    # A write nginx had sent to the node as it closed is not sent again (POST): the client sees
    # the 502, and no write it was told succeeded is missing.
    assert set(writes) <= {200, 502}, writes
    assert load.statuses(since=stopped_at)[200] > 0
    assert_every_acknowledged_write_stored(load, bucket)


@pytest.mark.quick
def test_the_postgresql_primary_killed_the_synchronous_standby_takes_over(topology, load_account):
    bucket = new_bucket(load_account)
    leader = role_of("leader")
    assert leader is not None and role_of("sync_standby") is not None
    with Load(load_account, bucket) as load:
        load.wait_for_answers(200)
        killed_at = time.monotonic()
        cluster("postgres-kill", leader)

        def recovered() -> bool:
            refused = [a.at for a in load.answers if a.at > killed_at and a.status != 200]
            return bool(refused) and load.statuses(since=max(refused))[200] >= 50

        wait_until(recovered, POSTGRES_BACK_SECONDS + 30, "200s after the failover")

    after = [a for a in load.answers if a.at > killed_at]
    refused = [a for a in after if a.status != 200]
    # Back: the first write sent after the outage showed that succeeded. (A read of a key the
    # cache holds is answered from Redis meanwhile, and a write sent before the kill may be
    # answered after the first refusal: neither says PostgreSQL is back.)
    first_200 = next(
        a.at for a in after if a.method == "POST" and a.status == 200 and a.sent > refused[0].at
    )
    seconds = first_200 - killed_at
    new_leader = role_of("leader")
    print(
        f"\nPostgreSQL primary {leader} killed: {new_leader} leads; {seconds:.1f} s from the kill "
        f"to the first 200; {len(refused)} answers refused meanwhile; "
        f"{len(load.acknowledged)} writes acknowledged"
    )
    assert new_leader not in (None, leader)
    assert {(a.status, a.retry_after is not None) for a in refused} == {(503, True)}
    assert all(a.status == 200 for a in after if a.sent > first_200 + 1), "a refusal after"
    assert seconds < POSTGRES_BACK_SECONDS
    assert_every_acknowledged_write_stored(load, bucket)

    # The old primary comes back as the new one's synchronous standby (pg_rewind).
    cluster("postgres-start", leader)
    wait_until(lambda: role_of("sync_standby") == leader, 120, f"{leader} back as a standby")


@pytest.mark.quick
def test_pgbouncer_restarted_answers_503_with_retry_after_until_it_is_back(topology, load_account):
    bucket = new_bucket(load_account)
    primary = role_of("leader")
    index = "0" if primary == "pg1" else "1"
    with Load(load_account, bucket) as load:
        load.wait_for_answers(200)
        restarted_at = time.monotonic()
        cluster("pgbouncer-stop", index)
        cluster("pgbouncer-start", index)
        back_at = time.monotonic()
        wait_until(lambda: load.statuses(since=back_at + 1)[200] >= 100, 60, "200s again")

    after = [a for a in load.answers if a.at > restarted_at]
    refused = [a for a in after if a.status != 200]
    seconds = (refused[-1].at - restarted_at) if refused else 0.0
    print(
        f"\nPgBouncer of {primary} restarted in {back_at - restarted_at:.1f} s: "
        f"{len(refused)} answers refused, the last {seconds:.1f} s after the stop"
    )
    assert {(a.status, a.retry_after is not None) for a in refused} <= {(503, True)}
    assert seconds < (back_at - restarted_at) + POSTGRES_BACK_SECONDS
    assert all(a.status == 200 for a in after if a.at > back_at + 1)
    assert_every_acknowledged_write_stored(load, bucket)


def expired_left(bucket: str) -> int:
    with psycopg.connect(PRIMARY) as connection:
        row = connection.execute(
            "SELECT count(*) FROM api_item WHERE bucket_id = %s", [bucket]
        ).fetchone()
    assert row is not None
    return row[0]


def worker_log(n: int) -> str:
    return (CLUSTER_DIR / "celery" / f"worker{n}.log").read_text(errors="replace")


@pytest.mark.quick
def test_a_celery_worker_killed_mid_sweep_the_other_finishes_it(topology, load_account):
    bucket = new_bucket(load_account)
    # 300,000 keys that expired a minute ago: a sweep of about 10 s (2,000 rows a batch, resting
    # as long as each took), long enough to kill its worker midway.
    with psycopg.connect(PRIMARY) as connection:
        connection.execute(
            "INSERT INTO api_item (bucket_id, key, value, expires_at, updated_at) "
            "SELECT %s, 'k' || i, 'v'::bytea, now() - interval '1 minute', now() "
            "FROM generate_series(1, 300000) AS i",
            [bucket],
        )
    task = manage(
        "shell", "-c", "from api.tasks import sweep_expired_items as t; print(t.delay().id)"
    ).split()[-1]  # after Django's shell's own line
    received = f"[{task}] received"
    wait_until(lambda: any(received in worker_log(n) for n in (1, 2)), 30, "a worker took it")
    first = 1 if received in worker_log(1) else 2
    other = 3 - first
    wait_until(lambda: expired_left(bucket) < 300_000, 30, "the sweep started")
    cluster("worker-kill", str(first))
    left_at_kill = expired_left(bucket)

    wait_until(lambda: expired_left(bucket) == 0, 120, "the sweep's end")
    cluster("worker-start", str(first))
    print(f"\nworker{first} killed with {left_at_kill:,} keys left; worker{other} swept them")
    assert left_at_kill > 0
    assert received in worker_log(other)  # RabbitMQ handed the unacknowledged task over
    assert f"[{task}] succeeded" in worker_log(other)
