"""The API on a Redis Cluster (REDIS_CLUSTER=true): a request cycle counted exactly for accounts
whose slots are on different masters, a revoked key refused at once, the usage roll-up, the
login throttle on the cache, and a write on one web node reaching a watcher on another through
the cluster's sharded pub/sub."""

import threading
from collections import Counter

import pytest
import redis
from django.db import connection
from django.test import Client

from accounts.models import ApiKey, UsageHour
from api import history, lifecycle, notify, tasks
from tests.conftest import Persona
from tests.serving import request, served
from tests.sse import Stream

from .conftest import cluster_environment

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 30
PATIENCE = 20  # seconds for an event to arrive on a loaded machine


def personas_on_every_master(cluster, count: int = 3) -> list[Persona]:
    """Accounts whose slots are held by `count` different masters."""
    found: dict[int, Persona] = {}
    n = 0
    while len(found) < count:
        n += 1
        persona = Persona(f"user{n}")
        found.setdefault(cluster.master_port(f"{{{persona.user.pk}}}"), persona)
    return list(found.values())


def test_a_request_cycle_is_counted_exactly_on_every_master(on_cluster, settings):
    settings.THISDB_REQUESTS_PER_HOUR = LIMIT
    people = personas_on_every_master(on_cluster)
    statuses: dict[str, list[int]] = {p.email: [] for p in people}

    def cycle(person: Persona, bucket: str, thread: int) -> None:
        client = Client(headers={"X-Api-Key": person.key})  # a client a thread
        for n in range(9):  # 4 threads x 9 requests = 36, past the limit
            key = f"t{thread}-{n % 3}"
            if n % 3 == 0:
                response = client.post(f"/v1/{bucket}/{key}", "5", content_type="text/plain")
            elif n % 3 == 1:
                response = client.patch(f"/v1/{bucket}/{key}", "+1", content_type="text/plain")
            else:
                response = client.get(f"/v1/{bucket}/t{thread}-{n % 3 - 1}")
            statuses[person.email].append(response.status_code)

    threads = []
    for person in people:
        bucket = person.new_bucket()  # request 1
        threads += [threading.Thread(target=cycle, args=(person, bucket, t)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for person in people:
        counted = Counter(statuses[person.email])
        assert counted == {200: LIMIT - 1, 429: 36 - (LIMIT - 1)}, person.email


def test_a_cycle_reads_what_it_wrote_and_deletes_it(on_cluster):
    alice = Persona("alice")
    bucket = alice.new_bucket()
    assert alice.set(bucket, "n", "41").status_code == 200
    patched = alice.client.patch(f"/v1/{bucket}/n", "+1", content_type="text/plain")
    assert patched.content == b"42"
    response = alice.client.get(f"/v1/{bucket}/n")
    assert response.content == b"42"
    assert int(response["X-RateLimit-Remaining"]) == 1000 - 4
    assert alice.client.delete(f"/v1/{bucket}/n").status_code == 200
    assert alice.client.get(f"/v1/{bucket}/n").status_code == 404


def test_a_revoked_key_is_refused_at_once(on_cluster):
    alice = Persona("alice")
    bucket = alice.new_bucket()
    assert alice.client.get(f"/v1/{bucket}").status_code == 200  # its lookup is cached now
    lifecycle.revoke_api_key(ApiKey.objects.get(pk=alice.api_key.pk))
    # The marker in the account's slot refuses it, whatever the cached lookup still says.
    response = alice.client.get(f"/v1/{bucket}")
    assert response.status_code == 403
    assert b"revoked" in response.content


def test_the_roll_up_copies_every_accounts_counters(on_cluster):
    people = personas_on_every_master(on_cluster)
    for n, person in enumerate(people):
        bucket = person.new_bucket()
        for _ in range(n + 1):
            person.client.get(f"/v1/{bucket}")

    assert tasks.roll_up_usage() == len(people)
    assert tasks.roll_up_usage() == len(people)  # again: the same rows, the same figures
    for n, person in enumerate(people):
        assert UsageHour.objects.get(api_key=person.api_key).requests == n + 2


def test_the_login_throttle_counts_on_the_cluster_cache(on_cluster):
    alice = Persona("alice")
    browser = Client(REMOTE_ADDR="10.9.1.1")
    answers = [
        browser.post("/accounts/login/", {"login": alice.email, "password": "guess"}).status_code
        for _ in range(11)
    ]
    assert answers == [200] * 10 + [429]


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def test_a_write_on_one_node_reaches_a_watcher_on_another(on_cluster, tmp_path):
    """Two web nodes of one worker each, on the cluster, hearing no change but through it (their
    history is polled hourly): a write on node A wakes the stream on node B, and both nodes
    listen with SSUBSCRIBE on the channel's master, none with SUBSCRIBE."""
    alice = Persona("alice")
    bucket = alice.new_bucket(default_ttl=0)
    history.start_watching(bucket)
    node = cluster_environment(
        on_cluster, THISDB_WATCH_POLL_SECONDS="3600", WEB_WORKERS="1", WEB_THREADS="2"
    )
    with (
        served(database_url(), tmp_path / "a.log", **node) as a,
        served(database_url(), tmp_path / "b.log", **node) as b,
        Stream(b, bucket, key=alice.key, timeout=PATIENCE) as stream,
    ):
        assert stream.status == 200
        assert stream.next_block().comments == ["watching"]
        channel = notify.channel()
        shard = redis.Redis(port=on_cluster.master_port(channel))
        assert shard.execute_command("PUBSUB", "SHARDNUMSUB", channel)[1] == 2
        for port in on_cluster.ports:
            assert redis.Redis(port=port).execute_command("PUBSUB", "NUMSUB", channel)[1] == 0
        status, _, _ = request(a, "POST", f"/v1/{bucket}/k", b"v", {"X-Api-Key": alice.key})
        assert status == 200
        event = stream.next_block()
        while event is not None and not event.event:  # keep-alives
            event = stream.next_block()
        assert event is not None and (event.event, event.data["key"]) == ("put", "k")
