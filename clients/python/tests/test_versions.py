"""Versions, conditional writes and transactions against the platform over HTTP, sync and async:
versions that grow with each write, the ETag round trip, 412 with the key's current version and
nothing changed, create-only writes, and transactions that apply all or nothing."""

import asyncio

import pytest
import thisdb

ALL_BYTES = bytes(range(256))


def test_every_write_gives_a_new_greater_version(db_client):
    bucket = db_client.create_bucket()
    first = db_client.set_versioned(bucket, "k", "one")
    second = db_client.set_versioned(bucket, "k", b"two", ttl=0)
    value, third = db_client.increment_versioned(bucket, "n", by=5)
    _, fourth = db_client.increment_versioned(bucket, "n", by=1)

    assert int(second) > int(first)
    assert int(fourth) > int(third)
    assert value == 5
    assert db_client.get_versioned(bucket, "k") == (b"two", second)
    assert db_client.get_versioned(bucket, "n") == (b"6", fourth)
    # The plain methods answer as before; their writes count too.
    assert db_client.set(bucket, "k", "three") is None
    assert db_client.increment(bucket, "n") == 7
    assert int(db_client.get_versioned(bucket, "k")[1]) > int(second)
    assert int(db_client.get_versioned(bucket, "n")[1]) > int(fourth)


def test_the_etag_is_the_version_and_if_none_match_answers_304(db_client):
    bucket = db_client.create_bucket()
    version = db_client.set_versioned(bucket, "a/b?c", ALL_BYTES)

    answer = db_client.request("GET", f"/{bucket}/a%2Fb%3Fc")
    assert answer.headers["ETag"] == f'"{version}"'
    assert answer.content == ALL_BYTES
    head = db_client.request("HEAD", f"/{bucket}/a%2Fb%3Fc")
    assert head.headers["ETag"] == f'"{version}"'

    assert db_client.get_if_changed(bucket, "a/b?c", version) is None
    newer = db_client.set_versioned(bucket, "a/b?c", "changed")
    assert db_client.get_if_changed(bucket, "a/b?c", version) == (b"changed", newer)
    assert db_client.get_if_changed(bucket, "a/b?c", newer) is None
    db_client.delete(bucket, "a/b?c")
    with pytest.raises(thisdb.NotFound):
        db_client.get_if_changed(bucket, "a/b?c", newer)


def test_a_stale_version_is_412_with_the_current_one_and_nothing_changes(db_client, platform):
    bucket = db_client.create_bucket()
    old = db_client.set_versioned(bucket, "k", "first")
    current = db_client.set_versioned(bucket, "k", "second")
    counter = db_client.set_versioned(bucket, "n", "10")

    with pytest.raises(thisdb.PreconditionFailed) as caught:
        db_client.set(bucket, "k", "lost update", if_version=old)
    assert (caught.value.status, caught.value.version) == (412, current)
    assert isinstance(caught.value, thisdb.ApiError)
    with pytest.raises(thisdb.PreconditionFailed) as caught:
        db_client.increment(bucket, "n", by=1, if_version=old)
    assert caught.value.version == counter
    with pytest.raises(thisdb.PreconditionFailed) as caught:
        db_client.delete(bucket, "k", if_version=old)
    assert caught.value.version == current
    assert platform.stored(bucket) == {"k": b"second", "n": b"10"}
    assert db_client.get_versioned(bucket, "k") == (b"second", current)

    # The current version, alone or among others, lets the write through.
    newest = db_client.set_versioned(bucket, "k", "third", if_version=current)
    assert int(newest) > int(current)
    assert db_client.increment(bucket, "n", by=2, if_version=[old, counter]) == 12
    db_client.delete(bucket, "k", if_version=int(newest))
    assert platform.stored(bucket) == {"n": b"12"}

    # A condition on a key that does not exist fails without a version.
    with pytest.raises(thisdb.PreconditionFailed) as caught:
        db_client.set(bucket, "k", "again", if_version=newest)
    assert caught.value.version is None
    with pytest.raises(thisdb.PreconditionFailed) as caught:
        db_client.set(bucket, "missing", "v", if_exists=True)
    assert caught.value.version is None
    assert platform.stored(bucket) == {"n": b"12"}


def test_if_absent_creates_only(db_client, platform):
    bucket = db_client.create_bucket()
    version = db_client.set_versioned(bucket, "lock", "me", ttl=60, if_absent=True)
    with pytest.raises(thisdb.PreconditionFailed) as caught:
        db_client.set(bucket, "lock", "you", if_absent=True)
    assert caught.value.version == version
    assert db_client.increment(bucket, "n", if_absent=True) == 1
    with pytest.raises(thisdb.PreconditionFailed):
        db_client.increment(bucket, "n", if_absent=True)
    assert db_client.increment(bucket, "n", if_exists=True) == 2
    assert platform.stored(bucket) == {"lock": b"me", "n": b"2"}


def test_listings_carry_each_keys_version(db_client):
    bucket = db_client.create_bucket()
    versions = {key: db_client.set_versioned(bucket, key, key) for key in ("a", "b", "c")}
    with_values = {i.key: i.version for i in db_client.list_keys(bucket, values=True)}
    assert with_values == versions
    assert {i.key: i.version for i in db_client.iter_keys(bucket)} == versions


def test_a_transaction_applies_every_operation(db_client, platform):
    bucket = db_client.create_bucket()
    a = db_client.set_versioned(bucket, "a", "before")
    db_client.set(bucket, "old", "x")
    db_client.set(bucket, "x", ALL_BYTES)
    x = db_client.get_versioned(bucket, "x")[1]
    for key in ("user:1", "user:2", "tmp:1", "tmp:2", "tmp:3"):
        db_client.set(bucket, key, "v")

    tx = db_client.transaction(bucket)
    tx.check("a", a)
    tx.check("b", None)
    tx.set("a", "text", ttl=60)
    tx.set("img", b"\x00\xffhello")
    tx.increment("n", by=5)
    tx.delete("old")
    tx.delete("never")
    tx.get("x")
    tx.get("absent")
    tx.count("user:")
    tx.delete_prefix("tmp:")
    results = tx.commit()

    a_now, img_now, n_now = (db_client.get_versioned(bucket, k)[1] for k in ("a", "img", "n"))
    assert int(a_now) > int(a)
    assert results == [
        thisdb.OpResult("set", key="a", version=a_now),
        thisdb.OpResult("set", key="img", version=img_now),
        thisdb.OpResult("increment", key="n", value=5, version=n_now),
        thisdb.OpResult("delete", key="old", deleted=True),
        thisdb.OpResult("delete", key="never", deleted=False),
        thisdb.OpResult("get", key="x", value=ALL_BYTES, version=x),
        thisdb.OpResult("get", key="absent"),
        thisdb.OpResult("count", prefix="user:", count=2),
        thisdb.OpResult("delete_prefix", prefix="tmp:", deleted=3),
    ]
    assert platform.stored(bucket) == {
        "a": b"text",
        "img": b"\x00\xffhello",
        "n": b"5",
        "x": ALL_BYTES,
        "user:1": b"v",
        "user:2": b"v",
    }
    expiries = platform.expiries(bucket)
    assert expiries["a"] < expiries["img"]  # ttl=60, against the bucket's default of 7 days


def test_a_transaction_whose_check_fails_applies_nothing(db_client, platform):
    bucket = db_client.create_bucket()
    stale = db_client.set_versioned(bucket, "a", "one")
    current = db_client.set_versioned(bucket, "a", "two")
    taken = db_client.set_versioned(bucket, "b", "taken")
    before = platform.stored(bucket)

    tx = db_client.transaction(bucket)
    tx.check("a", current)  # holds
    tx.check("a", stale)  # fails
    tx.check("b", None)  # fails: b exists
    tx.set("a", "three")
    tx.increment("n")
    tx.delete("b")
    with pytest.raises(thisdb.Conflict) as caught:
        tx.commit()
    assert caught.value.status == 409
    assert caught.value.failed == [1, 2]
    assert caught.value.versions["a"] == current
    assert caught.value.versions["b"] == taken
    assert platform.stored(bucket) == before
    assert db_client.get_versioned(bucket, "a") == (b"two", current)


def test_an_invalid_operation_is_400_naming_its_index(db_client, platform):
    bucket = db_client.create_bucket()
    tx = db_client.transaction(bucket)
    tx.set("a", "v")
    tx.ops.append({"op": "frobnicate", "key": "b"})
    with pytest.raises(thisdb.BadRequest, match=r"\b1\b"):
        tx.commit()
    assert platform.stored(bucket) == {}


def test_the_async_transaction(server, carol, platform):
    async def scenario():
        async with thisdb.AsyncClient(carol.key, base_url=server) as db:
            bucket = await db.create_bucket()
            version = await db.set_versioned(bucket, "a", "one", if_absent=True)
            async with db.transaction(bucket) as tx:
                tx.check("a", version)
                tx.set("a", ALL_BYTES)
                tx.increment("n", by=3)
                tx.get("a")
            stale = db.transaction(bucket)
            stale.check("a", version)
            stale.delete("a")
            with pytest.raises(thisdb.Conflict) as caught:
                await stale.commit()
            with pytest.raises(thisdb.PreconditionFailed) as refused:
                await db.set(bucket, "a", "x", if_version=version)
            now = await db.get_versioned(bucket, "a")
            unchanged = await db.get_if_changed(bucket, "a", now[1])
            return bucket, tx.results, caught.value, refused.value, now, unchanged

    bucket, results, conflict, refused, now, unchanged = asyncio.run(scenario())
    a_now = now[1]
    assert now == (ALL_BYTES, a_now)
    assert results[0] == thisdb.OpResult("set", key="a", version=a_now)
    assert results[1].value == 3
    assert results[2] == thisdb.OpResult("get", key="a", value=ALL_BYTES, version=a_now)
    assert (conflict.failed, conflict.versions) == ([0], {"a": a_now})
    assert refused.version == a_now
    assert unchanged is None
    assert platform.stored(bucket) == {"a": ALL_BYTES, "n": b"3"}
