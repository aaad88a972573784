"""thisdb.AsyncClient against the platform over HTTP: the same methods, awaited."""

import asyncio
import time

import pytest
import thisdb


def run(coroutine):
    return asyncio.run(coroutine)


def test_every_method(server, carol, platform):
    async def scenario():
        async with thisdb.AsyncClient(carol.key, base_url=server + "/v1/") as db:
            bucket = await db.create_bucket(default_ttl=0)
            await db.update_bucket(bucket, 120)
            await db.set(bucket, "bin", bytes(range(256)))
            await db.set(bucket, "a/b?c", "text", ttl=0)
            await db.set_json(bucket, "doc", {"x": [1, 2]})
            got = (
                await db.get(bucket, "bin"),
                await db.get(bucket, "a/b?c"),
                await db.get_json(bucket, "doc"),
            )
            counted = [await db.increment(bucket, "n"), await db.increment(bucket, "n", by=-3)]
            page = await db.list_keys(bucket, limit=2, values=True)
            listed = [item.key async for item in db.iter_keys(bucket, page_size=1)]
            token = await db.create_token(bucket, "a/", "read", 60)
            await db.delete(bucket, "doc")
            limits = db.rate_limit
            other = await db.create_bucket()
            await db.delete_bucket(other)
            return bucket, got, counted, page, listed, token, limits, other

    bucket, got, counted, page, listed, token, limits, other = run(scenario())

    assert got == (bytes(range(256)), b"text", {"x": [1, 2]})
    assert counted == [1, -2]
    assert [(i.key, i.value) for i in page] == [("a/b?c", b"text"), ("bin", bytes(range(256)))]
    assert page.next_cursor
    assert listed == ["a/b?c", "bin", "doc", "n"]
    assert [row["prefix"] for row in platform.tokens(bucket)] == ["a/"]
    assert len(token) == 40
    assert platform.bucket(bucket)["default_ttl"] == 120
    assert sorted(platform.stored(bucket)) == ["a/b?c", "bin", "n"]
    assert limits.limit == 1000 and limits.remaining == 1000 - 17  # 17 requests so far
    assert platform.bucket(other) is None


def test_concurrent_requests_share_the_client(server, carol, platform):
    async def scenario():
        async with thisdb.AsyncClient(carol.key, base_url=server) as db:
            bucket = await db.create_bucket()
            await asyncio.gather(*(db.set(bucket, f"k{n:02d}", str(n)) for n in range(40)))
            counts = await asyncio.gather(*(db.increment(bucket, "hits") for _ in range(20)))
            return bucket, sorted(counts)

    bucket, counts = run(scenario())
    assert counts == list(range(1, 21))
    assert len(platform.stored(bucket)) == 41


def test_iter_keys_over_more_than_2000_keys(server, carol, platform):
    bucket = platform.new_bucket(carol)
    keys = [f"key/{n:05d}" for n in range(2100)]
    platform.put_items(bucket, {k: b"\xff" + k.encode() for k in keys})

    async def scenario():
        async with thisdb.AsyncClient(carol.key, base_url=server) as db:
            return [
                (i.key, i.value) async for i in db.iter_keys(bucket, prefix="key/", values=True)
            ]

    assert run(scenario()) == [(k, b"\xff" + k.encode()) for k in keys]


def test_list_and_iter_buckets(server, carol, platform):
    mine = sorted(platform.new_bucket(carol) for _ in range(5))
    platform.new_bucket(platform.persona("dave"))

    async def scenario():
        async with thisdb.AsyncClient(carol.key, base_url=server) as db:
            first = await db.list_buckets(limit=2)
            second = await db.list_buckets(limit=2, cursor=first.next_cursor)
            listed = [b async for b in db.iter_buckets(page_size=2)]
            bucket = await db.create_bucket()
            token = await db.create_token(bucket, "", "read", 60)
        async with thisdb.AsyncClient(token=token, base_url=server) as scoped:
            with pytest.raises(thisdb.Forbidden, match="a token cannot list buckets"):
                await scoped.list_buckets()
        return first, second, listed

    first, second, listed = run(scenario())
    assert first.buckets == mine[:2] and first.next_cursor
    assert second.buckets == mine[2:4] and second.next_cursor
    assert [b.bucket for b in listed] == mine
    assert all(b.default_ttl == 604800 and b.keys == 0 and b.bytes == 0 for b in listed)


def test_errors_are_the_same_exceptions(server, strict_server, carol):
    async def scenario():
        async with thisdb.AsyncClient(carol.key, base_url=server) as db:
            bucket = await db.create_bucket()
            with pytest.raises(thisdb.NotFound, match="key not found"):
                await db.get(bucket, "missing")
            with pytest.raises(thisdb.BadRequest, match="ttl must be"):
                await db.set(bucket, "k", b"v", ttl=-5)
            with pytest.raises(thisdb.PayloadTooLarge):
                await db.set(bucket, "k", b"x" * (1024 * 1024 + 1))
            with pytest.raises(thisdb.NotAcceptable):
                await db.request("GET", f"/{bucket}", params={"format": "csv"})
        async with thisdb.AsyncClient("tdb_nope", base_url=server) as db:
            with pytest.raises(thisdb.Forbidden, match="invalid API key"):
                await db.create_bucket()
        async with thisdb.AsyncClient(carol.key, base_url=strict_server) as db:
            bucket = await db.create_bucket()
            await db.set(bucket, "k", b"1")
            with pytest.raises(thisdb.RateLimited) as caught:
                await db.set(bucket, "k", b"2")
            assert caught.value.retry_after == 1
        async with thisdb.AsyncClient(carol.key, base_url="http://127.0.0.1:9") as db:
            with pytest.raises(thisdb.NetworkError):
                await db.create_bucket()

    run(scenario())


def test_retries_wait_as_retry_after_asks(strict_server, carol, platform):
    async def scenario():
        async with thisdb.AsyncClient(carol.key, base_url=strict_server, retries=1) as db:
            bucket = await db.create_bucket()
            await db.set(bucket, "k", b"1")
            started = time.monotonic()
            await db.set(bucket, "k", b"2")
            return bucket, time.monotonic() - started

    bucket, waited = run(scenario())
    assert waited >= 0.9
    assert platform.stored(bucket)["k"] == b"2"
