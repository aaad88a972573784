"""Client.export and Client.import_items (and the async client's) against the platform over
HTTP: a bucket out and back in, equal; where an import stops and what it applied before.

Most tests hold whichever way the server answers, and run both ways (`either_client`): with the
bulk routes (one streamed export, NDJSON imports) and without them (an older server, or one run
with THISDB_BULK=false: the listing page by page, one write a key); the results must be the
same. The tests marked `with_bulk_routes` are of the routes themselves (skipped against a
server without them), those taking `older_server` of the fallbacks.
"""

import asyncio
import base64
import time

import pytest
import thisdb

ALL_BYTES = bytes(range(256))


@pytest.fixture
def roomy(carol, platform) -> None:
    """Carol may make 20,000 requests this hour: enough for one write a key (the fallback)."""
    platform.set_requests_per_hour(carol, 20_000)


def _contents(count: int) -> dict[str, bytes]:
    """Keys of every kind (a newline, non-ASCII, URL characters) with binary and text values."""
    contents = {f"k{n:05d}": f"value {n}".encode() for n in range(count)}
    contents |= {
        "bin": ALL_BYTES,
        "empty": b"",
        "new\nline": b"a\nb\r\n\tc",
        "é日本/?#% ": "é ✓".encode(),
        "..": b"\xff\x00",
        "\U0001f600": b"\xe2\x28\xa1",  # not UTF-8
    }
    return contents


def _fill(platform, bucket: str, contents: dict[str, bytes]) -> dict[str, float | None]:
    """The keys written straight into the database, a third never expiring; their expiries."""
    now = time.time()
    expiries = {k: now + 600 + n if n % 3 else None for n, k in enumerate(contents)}
    platform.put_items(bucket, contents, expiries)
    return expiries


def _same_items(exported: list[thisdb.Item], listed: list[thisdb.Item]) -> None:
    """The same keys, values and versions; the same ttls within the second that may have
    ticked between the two reads."""
    assert [(i.key, i.value, i.version) for i in exported] == [
        (i.key, i.value, i.version) for i in listed
    ]
    for one, other in zip(exported, listed, strict=True):
        assert one.ttl is not None and other.ttl is not None, one.key
        assert abs(one.ttl - other.ttl) <= 1, one.key


def _same_expiries(copied: dict, original: dict, took: float) -> None:
    """An item's ttl is what the key had left when exported (rounded up to the second): the
    copy expires that much after its write, later by up to the time the copy `took`."""
    for key, expires_at in original.items():
        if expires_at is None:
            assert copied[key] is None, key
        else:
            assert copied[key] is not None, key
            assert expires_at - 1 <= copied[key] <= expires_at + 1 + took, key


def test_export_gives_every_key_in_order_with_its_value_ttl_and_version(either_client, platform):
    bucket = either_client.create_bucket()
    contents = _contents(2500)  # more than two pages of an older server's listing
    expiries = _fill(platform, bucket, contents)

    exported = list(either_client.export(bucket))

    assert [item.key for item in exported] == sorted(contents, key=lambda k: k.encode())
    assert {item.key: item.value for item in exported} == contents
    _same_items(exported, list(either_client.iter_keys(bucket, values=True)))
    now = time.time()
    for item in exported:
        assert item.version is not None
        if expiries[item.key] is None:
            assert item.ttl == 0, item.key
        else:
            assert abs(now + item.ttl - expiries[item.key]) <= 2, item.key
    under = [item.key for item in either_client.export(bucket, prefix="k0001")]
    assert under == [f"k0001{n}" for n in range(10)]
    assert list(either_client.export(either_client.create_bucket())) == []


def test_export_then_import_into_another_bucket_is_equal(roomy, either_client, platform):
    source, target = either_client.create_bucket(), either_client.create_bucket(default_ttl=60)
    contents = _contents(1200)
    expiries = _fill(platform, source, contents)

    started = time.monotonic()
    imported = either_client.import_items(target, either_client.export(source))
    took = time.monotonic() - started

    assert imported == len(contents)
    assert platform.stored(target) == contents
    _same_expiries(platform.expiries(target), expiries, took)  # 0 kept: never, not the default


def test_items_as_dicts_and_tuples_and_their_ttls(either_client, platform):
    bucket = either_client.create_bucket(default_ttl=0)
    started = time.time()
    items = [
        ("plain", b"\x00\xff"),
        ("text", "héllo", 3600),
        {"key": "line", "value": "from an export", "ttl": 0, "version": "7"},
        {"key": "b64", "value": base64.b64encode(ALL_BYTES).decode(), "encoding": "base64"},
        {"key": "raw", "value": bytearray(b"\x01\x02"), "ttl": 120},
        thisdb.Item("item", b"v", 60, "3"),
    ]

    assert either_client.import_items(bucket, iter(items)) == 6
    assert either_client.import_items(bucket, []) == 0

    assert platform.stored(bucket) == {
        "plain": b"\x00\xff",
        "text": "héllo".encode(),
        "line": b"from an export",
        "b64": ALL_BYTES,
        "raw": b"\x01\x02",
        "item": b"v",
    }
    expiries = platform.expiries(bucket)
    assert expiries["plain"] is None and expiries["line"] is None and expiries["b64"] is None
    for key, ttl in (("text", 3600), ("raw", 120), ("item", 60)):
        assert abs(expiries[key] - started - ttl) <= 2, key


def test_an_item_the_client_cannot_send_stops_the_import_after_the_ones_before_it(
    either_client, platform
):
    bucket = either_client.create_bucket()
    good = [(f"k{n:03d}", "v") for n in range(150)]  # past the first request of 100

    with pytest.raises(thisdb.ImportStopped) as stopped:
        either_client.import_items(bucket, [*good, ("bad", 5), ("never", "sent")])

    assert (stopped.value.line, stopped.value.applied) == (151, 150)
    assert isinstance(stopped.value.error, thisdb.InvalidArgument)
    assert "item 151: the value of 'bad' must be bytes or str, not int" in str(stopped.value)
    assert sorted(platform.stored(bucket)) == [key for key, _ in good]


@pytest.mark.parametrize("at", [40, 130])  # in the first request, and in the streamed rest
def test_a_line_the_server_refuses_stops_the_import_with_its_number(either_client, platform, at):
    bucket = either_client.create_bucket()
    items = [(f"k{n:03d}", "v") for n in range(200)]
    items[at - 1] = ("x" * 600, "v")  # a key longer than 512 bytes

    with pytest.raises(thisdb.ImportStopped) as stopped:
        either_client.import_items(bucket, items)

    assert (stopped.value.line, stopped.value.applied) == (at, at - 1)
    assert isinstance(stopped.value.error, thisdb.BadRequest)
    assert "512 bytes" in stopped.value.error.message
    assert sorted(platform.stored(bucket)) == [key for key, _ in items[: at - 1]]
    # What it said to do: go on after the lines applied, the bad one mended.
    items[at - 1] = ("mended", "v")
    assert either_client.import_items(bucket, items[stopped.value.applied :]) == 200 - (at - 1)
    assert len(platform.stored(bucket)) == 200


def test_no_such_bucket(either_client):
    with pytest.raises(thisdb.NotFound):
        list(either_client.export("NoSuchBucket0000000"))
    with pytest.raises(thisdb.ImportStopped) as stopped:
        either_client.import_items("NoSuchBucket0000000", [("k", "v")])
    assert isinstance(stopped.value.error, thisdb.NotFound)
    assert (stopped.value.line, stopped.value.applied) == (1, 0)


def test_the_async_client_exports_and_imports_the_same(roomy, either_server, carol, platform):
    async def scenario(source: str, target: str, other: str) -> tuple:
        async with thisdb.AsyncClient(carol.key, base_url=either_server) as db:
            exported = [item async for item in db.export(source)]

            async def items():
                for item in exported:
                    yield item

            imported = await db.import_items(target, items())
            # A plain iterable too (a few: without the routes, each is a request).
            from_list = await db.import_items(other, exported[:50])
            try:
                await db.import_items(other, [("a", "v"), ("b", None)])
            except thisdb.ImportStopped as stopped:
                return exported, imported, from_list, stopped
            raise AssertionError("the import did not stop")

    source, target, other = (platform.new_bucket(carol) for _ in range(3))
    contents = _contents(1100)
    expiries = _fill(platform, source, contents)
    with thisdb.Client(carol.key, base_url=either_server) as db:
        listed = list(db.iter_keys(source, values=True))

    started = time.monotonic()
    exported, imported, from_list, stopped = asyncio.run(scenario(source, target, other))
    took = time.monotonic() - started

    _same_items(exported, listed)
    assert (imported, from_list) == (len(contents), 50)
    assert platform.stored(target) == contents
    assert platform.stored(other) == {item.key: item.value for item in exported[:50]} | {"a": b"v"}
    _same_expiries(platform.expiries(target), expiries, took)
    assert (stopped.line, stopped.applied) == (2, 1)


# The fallbacks: a server without the bulk routes (older_server)


def _requests(db: thisdb.Client) -> int:
    """The requests counted against the hourly limit so far (as of the last answer)."""
    assert db.rate_limit is not None
    return db.rate_limit.limit - db.rate_limit.remaining


def test_without_the_routes_export_pages_and_import_writes_each_key(
    older_server, db_client, carol, platform
):
    bucket, target = db_client.create_bucket(), db_client.create_bucket()
    platform.put_items(bucket, {f"k{n:04d}": b"v" for n in range(2100)})
    exported = list(db_client.export(bucket))  # through the bulk route, to compare

    with thisdb.Client(carol.key, base_url=older_server) as older:
        older.list_keys(bucket, limit=1)  # the hour's count so far, in its answer
        before = _requests(older)
        # The same items (values, versions, ttls: these never expire), the listing page by page.
        assert list(older.export(bucket)) == exported
        assert _requests(older) - before == 3  # the first page, then two more

        before = _requests(older)
        assert older.import_items(target, [("a", "1"), ("b", "2")]) == 2
        assert _requests(older) - before == 3  # the first request, refused; a write a key
        before = _requests(older)
        assert older.import_items(target, [("c", "3"), ("d", "4")]) == 2
        assert _requests(older) - before == 2  # the client remembers: a write a key at once
    assert platform.stored(target) == {"a": b"1", "b": b"2", "c": b"3", "d": b"4"}


def test_without_the_routes_the_hourly_limit_stops_the_import_where_it_is(
    older_server, carol, platform
):
    platform.set_requests_per_hour(carol, 4)
    bucket = platform.new_bucket(carol)
    with thisdb.Client(carol.key, base_url=older_server) as db:
        with pytest.raises(thisdb.ImportStopped) as stopped:
            db.import_items(bucket, [(f"k{n}", "v") for n in range(10)])

    # One request for the first batch (refused: an older server), then a write a key.
    assert (stopped.value.line, stopped.value.applied) == (4, 3)
    assert isinstance(stopped.value.error, thisdb.RateLimited)
    assert stopped.value.error.retry_after is not None
    assert sorted(platform.stored(bucket)) == ["k0", "k1", "k2"]


# The bulk routes themselves


def test_an_import_is_counted_by_the_hundred_lines(with_bulk_routes, db_client, platform):
    bucket = db_client.create_bucket()
    items = [(f"k{n:04d}", "v") for n in range(1000)]
    db_client.list_keys(bucket, limit=1)
    before = _requests(db_client)

    assert db_client.import_items(bucket, items) == 1000

    # The first batch of 100 in a request of its own, then the 900 others streamed: about one
    # request per 100 lines, where one write a key would have been 1000.
    assert _requests(db_client) - before <= 12
    assert len(platform.stored(bucket)) == 1000


def test_out_of_requests_mid_import_stops_with_what_was_applied(
    with_bulk_routes, server, carol, platform
):
    platform.set_requests_per_hour(carol, 5)
    bucket = platform.new_bucket(carol)
    items = [(f"k{n:05d}", "v") for n in range(5000)]
    with thisdb.Client(carol.key, base_url=server) as db:
        with pytest.raises(thisdb.ImportStopped) as stopped:
            db.import_items(bucket, items)

    applied = stopped.value.applied
    assert isinstance(stopped.value.error, thisdb.RateLimited)
    assert 0 < applied < 5000 and stopped.value.line == applied + 1
    assert sorted(platform.stored(bucket)) == [key for key, _ in items[:applied]]


def test_a_token_importing_outside_its_prefix_is_stopped_at_that_line(
    with_bulk_routes, server, db_client, platform
):
    bucket = db_client.create_bucket()
    token = db_client.create_token(bucket, "mine:", "write", 60)
    items = [(f"mine:{n:03d}", "v") for n in range(150)] + [("theirs", "v"), ("mine:z", "v")]
    with thisdb.Client(token=token, base_url=server) as scoped:
        with pytest.raises(thisdb.ImportStopped) as stopped:
            scoped.import_items(bucket, items)

    assert isinstance(stopped.value.error, thisdb.Forbidden)
    assert stopped.value.line == 151
    assert sorted(platform.stored(bucket)) == [key for key, _ in items[: stopped.value.applied]]
