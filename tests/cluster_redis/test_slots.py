"""Every script of api.limits touches keys of one slot, so it runs on a Redis Cluster: the keys
computed as a request computes them (a token's request that writes, a transaction of several
keys, a watch), with each slot as the cluster says (CLUSTER KEYSLOT), and each script run on it.
"""

import time

import pytest
import redis

from api import limits, principals
from tests.conftest import Persona

pytestmark = pytest.mark.django_db


def test_a_token_write_touches_one_slot_and_is_counted_on_the_cluster(on_cluster, settings):
    settings.THISDB_KEY_WRITES_PER_SECOND = 1
    alice = Persona("alice")
    bucket = alice.new_bucket()
    token = alice.token(bucket, "a/")
    principal = principals.principal_for_token(token)
    assert principal is not None and principal.api_key_id is not None
    hour = limits.hour_start(time.time())
    keys = [
        limits.counter_key(principal.user_id, principal.api_key_id, hour),
        limits.hour_keys_key(principal.user_id, hour),
        *principal.block_names,  # the token's, its key's and its account's markers
        limits.marker_key(principal.user_id, bucket, "a/k"),
    ]
    assert len(keys) == 6
    assert len({on_cluster.keyslot(name) for name in keys}) == 1

    def write():
        return limits.check(
            principal.user_id,
            principal.api_key_id,
            1000,
            write=(bucket, "a/k"),
            blocks=principal.block_names,
        )

    first, again = write(), write()
    assert first is not None and again is not None
    assert (again.count - first.count, first.write_wait_ms) == (1, 0)
    assert 0 < again.write_wait_ms <= 1000  # the same key within its second: the marker holds


def test_a_transaction_touches_one_slot_and_claims_its_keys_on_the_cluster(on_cluster, settings):
    settings.THISDB_KEY_WRITES_PER_SECOND = 1
    alice = Persona("alice")
    bucket = alice.new_bucket()
    principal = principals.principal_for_api_key(alice.key)
    assert principal is not None and principal.api_key_id is not None
    writes = [(bucket, f"k{n}") for n in range(50)]  # 50 keys, spread over a bucket's names
    hour = limits.hour_start(time.time())
    keys = [
        limits.counter_key(principal.user_id, principal.api_key_id, hour),
        limits.hour_keys_key(principal.user_id, hour),
        *principal.block_names,
        *(limits.marker_key(principal.user_id, b, k) for b, k in writes),
    ]
    assert len({on_cluster.keyslot(name) for name in keys}) == 1

    decision = limits.check_batch(
        principal.user_id, principal.api_key_id, 1000, 2, writes, principal.block_names
    )
    assert decision is not None and (decision.write_wait_ms, decision.refused) == (0, False)
    assert limits.write_slot(principal.user_id, bucket, "k7") > 0  # claimed by the transaction


def test_a_watch_slot_and_a_page_write_touch_one_key_each(on_cluster):
    assert limits.open_watch(42, "s1", 1) is True
    assert limits.open_watch(42, "s2", 1) is False  # the account's one slot is taken
    limits.close_watch(42, "s1")
    assert limits.open_watch(42, "s2", 1) is True
    assert on_cluster.keyslot(limits.watches_key(42)) == on_cluster.keyslot("{42}")


def test_a_script_whose_keys_span_slots_is_refused_before_it_is_sent(on_cluster):
    """Why the test above matters: redis-py refuses such a call (and Redis would answer
    CROSSSLOT), so a request whose keys spanned accounts would be served without limits."""
    limiter = limits.limiter()
    assert isinstance(limiter, limits.RedisLimiter)
    names = [limits.counter_key(1, 1, 0), limits.counter_key(2, 2, 0)]
    assert on_cluster.keyslot(names[0]) != on_cluster.keyslot(names[1])
    with pytest.raises(redis.exceptions.RedisClusterException, match="same key slot"):
        limiter.client.evalsha(limiter.script.sha, 2, *names, 0, 1, 10, 0, 0)


def test_accounts_spread_over_every_master(on_cluster):
    masters = {on_cluster.master_port(f"{{{user_id}}}") for user_id in range(1, 10)}
    assert len(masters) == 3
