"""thisdb.Client against the platform over HTTP: every method, bytes round trips, key encoding,
paging, configuration, and every error mapped from a real answer of the server."""

import copy
import pickle
import time

import pytest
import thisdb

ALL_BYTES = bytes(range(256))
# Every character a URL treats specially, and segments URL normalization would drop ("." and
# "..").
AWKWARD_KEYS = [
    ".", "..", "../up", "x/./y", "a/b", "/lead", "trail/", "a//b", "sp ace", "q?x=1", "h#ash",
    "per%cent", "%2F", "a%C3%28", "plus+", "semi;colon", "tab\tkey", "cr\rkey", "new\nline",
    "é日本", "\U0001f600", "~tilde", "amp&eq=",
]  # fmt: skip


def test_buckets_create_update_delete(db_client, carol, platform):
    default = db_client.create_bucket()
    never = db_client.create_bucket(default_ttl=0)  # 0 is sent, not dropped
    assert platform.buckets(carol) == {default: 604800, never: 0}

    assert db_client.update_bucket(never, 3600) is None
    assert platform.bucket(never)["default_ttl"] == 3600
    db_client.update_bucket(never, 0)
    assert platform.bucket(never)["default_ttl"] == 0

    db_client.set(never, "k", b"v")
    assert db_client.delete_bucket(never) is None
    assert platform.bucket(never) is None
    with pytest.raises(thisdb.NotFound, match="bucket not found"):
        db_client.get(never, "k")


def test_values_are_bytes_in_and_bytes_out(db_client, platform):
    bucket = db_client.create_bucket()
    db_client.set(bucket, "bin", ALL_BYTES)
    db_client.set(bucket, "empty", b"")
    db_client.set(bucket, "text", "héllo")  # str is sent as UTF-8
    db_client.set(bucket, "view", memoryview(b"\x00\xff"))
    document = {"name": "Zoë", "tags": ["a", "b"], "n": 1.5, "none": None}
    db_client.set_json(bucket, "doc", document)

    assert db_client.get(bucket, "bin") == ALL_BYTES
    assert db_client.get(bucket, "empty") == b""
    assert db_client.get(bucket, "text") == "héllo".encode()
    assert db_client.get(bucket, "view") == b"\x00\xff"
    assert db_client.get_json(bucket, "doc") == document
    compact = '{"name":"Zoë","tags":["a","b"],"n":1.5,"none":null}'
    assert platform.stored(bucket)["doc"] == compact.encode()


def test_keys_are_percent_encoded_exactly(db_client, platform):
    bucket = db_client.create_bucket()
    for key in AWKWARD_KEYS:
        db_client.set(bucket, key, ALL_BYTES + key.encode())

    for key in AWKWARD_KEYS:
        assert db_client.get(bucket, key) == ALL_BYTES + key.encode(), key
    assert platform.stored(bucket) == {key: ALL_BYTES + key.encode() for key in AWKWARD_KEYS}
    listed = {i.key: i.value for i in db_client.list_keys(bucket, values=True)}
    assert listed == platform.stored(bucket)
    for key in AWKWARD_KEYS:
        db_client.delete(bucket, key)
    assert platform.stored(bucket) == {}

    # On the wire: every byte but A-Z a-z 0-9 - . _ ~ is encoded; dots alone too.
    with pytest.raises(thisdb.NotFound) as caught:
        db_client.get(bucket, "a b/c?d#e%f\ng~h.i-j_k")
    sent = caught.value.response.request.url.raw_path
    assert sent == f"/v1/{bucket}/a%20b%2Fc%3Fd%23e%25f%0Ag~h.i-j_k".encode()
    with pytest.raises(thisdb.NotFound, match="key not found") as caught:
        db_client.get(bucket, "..")  # reaches the key, not the parent folder
    assert caught.value.response.request.url.raw_path == f"/v1/{bucket}/%2E%2E".encode()


def test_ttl_increment_and_delete(db_client, platform):
    bucket = db_client.create_bucket(default_ttl=60)
    before = time.time()
    db_client.set(bucket, "short", b"v", ttl=3600)
    db_client.set(bucket, "never", b"v", ttl=0)
    db_client.set(bucket, "default", b"v")
    expiry = platform.expiries(bucket)
    assert abs(expiry["short"] - before - 3600) < 5
    assert expiry["never"] is None
    assert abs(expiry["default"] - before - 60) < 5

    assert db_client.increment(bucket, "n") == 1
    assert db_client.increment(bucket, "n", by=41) == 42
    assert db_client.increment(bucket, "n", by=-50) == -8
    assert db_client.increment(bucket, "t", by=2, ttl=0) == 2
    assert platform.expiries(bucket)["t"] is None
    assert db_client.get(bucket, "n") == b"-8"

    assert db_client.delete(bucket, "n") is None
    with pytest.raises(thisdb.NotFound, match="key not found"):
        db_client.delete(bucket, "n")


def test_list_keys_one_page_with_its_cursor(db_client):
    bucket = db_client.create_bucket()
    for key in ["b", "a", "c", "ab"]:
        db_client.set(bucket, key, key.upper())
    db_client.set(bucket, "d", ALL_BYTES)

    page = db_client.list_keys(bucket, limit=2)
    assert page.keys == ["a", "ab"]
    assert [i.value for i in page] == [None, None]
    assert page.next_cursor

    rest = db_client.list_keys(bucket, limit=2, cursor=page.next_cursor, values=True)
    assert [(i.key, i.value) for i in rest] == [("b", b"B"), ("c", b"C")]
    last = db_client.list_keys(bucket, cursor=rest.next_cursor, values=True)
    # base64 decoded; the seconds the key has left (the bucket's default ttl, just written)
    assert [(i.key, i.value) for i in last] == [("d", ALL_BYTES)]
    assert 604790 <= last.items[0].ttl <= 604800
    assert last.next_cursor is None
    assert db_client.list_keys(bucket, prefix="a").keys == ["a", "ab"]
    assert db_client.list_keys(db_client.create_bucket()).items == []


def test_iter_keys_follows_the_cursor_over_more_than_2000_keys(db_client, platform):
    bucket = db_client.create_bucket()
    keys = [f"k{n:05d}" for n in range(2345)]
    platform.put_items(bucket, {k: k.encode() for k in keys})
    platform.put_items(bucket, {f"other{n}": b"" for n in range(10)})

    listed = list(db_client.iter_keys(bucket, prefix="k", values=True))

    assert [i.key for i in listed] == keys
    assert all(i.value == i.key.encode() for i in listed)
    assert len(list(db_client.iter_keys(bucket, page_size=500))) == 2355


def test_list_buckets_pages_by_cursor_over_the_accounts_own_buckets(server, db_client, platform):
    never = db_client.create_bucket(default_ttl=0)
    mine = sorted([never] + [db_client.create_bucket() for _ in range(4)])
    platform.set_usage(never, keys=3, stored_bytes=42)  # as beat counts them
    dave = platform.persona("dave")
    daves = platform.new_bucket(dave)

    first = db_client.list_buckets(limit=2)
    assert isinstance(first, thisdb.BucketPage)
    assert first.buckets == mine[:2] and len(first) == 2 and first.next_cursor
    second = db_client.list_buckets(limit=2, cursor=first.next_cursor)
    assert second.buckets == mine[2:4] and second.next_cursor
    last = db_client.list_buckets(limit=2, cursor=second.next_cursor)
    assert last.buckets == mine[4:] and last.next_cursor is None

    listed = list(db_client.iter_buckets(page_size=2))
    assert [b.bucket for b in listed] == mine
    assert {b.bucket: b for b in listed}[never] == thisdb.BucketInfo(
        never, default_ttl=0, keys=3, bytes=42
    )
    assert all(b.default_ttl == 604800 for b in listed if b.bucket != never)
    assert [b.bucket for b in db_client.iter_buckets()] == mine  # one page of up to 1000
    assert daves not in [b.bucket for b in db_client.iter_buckets(page_size=1)]
    with thisdb.Client(dave.key, base_url=server) as other:
        assert other.list_buckets().buckets == [daves]
    with pytest.raises(thisdb.BadRequest, match="limit must be a whole number from 1 to 1000"):
        db_client.list_buckets(limit=0)


def test_an_account_without_buckets_lists_none(db_client):
    page = db_client.list_buckets()
    assert (page.items, page.next_cursor) == ([], None)
    assert list(db_client.iter_buckets()) == []


def test_a_token_cannot_list_buckets(server, db_client):
    bucket = db_client.create_bucket()
    token = db_client.create_token(bucket, "", "read,write", 60)
    with thisdb.Client(token=token, base_url=server) as scoped:
        with pytest.raises(thisdb.Forbidden, match="a token cannot list buckets") as caught:
            scoped.list_buckets()
        assert caught.value.status == 403
        with pytest.raises(thisdb.Forbidden):
            next(scoped.iter_buckets())


def test_create_token_and_use_it(server, db_client, platform):
    bucket = db_client.create_bucket()
    db_client.set(bucket, "user:1:name", b"alice")
    db_client.set(bucket, "secret", b"x")

    token = db_client.create_token(bucket, "user:1:", ["read", "write"], 600)
    assert len(token) == 40
    [row] = platform.tokens(bucket)
    assert (row["prefix"], row["can_read"], row["can_write"]) == ("user:1:", True, True)

    with thisdb.Client(token=token, base_url=server) as scoped:
        assert scoped.get(bucket, "user:1:name") == b"alice"
        scoped.set(bucket, "user:1:email", b"a@example.com")
        assert scoped.list_keys(bucket).keys == ["user:1:email", "user:1:name"]
        with pytest.raises(thisdb.Forbidden, match="only covers keys starting with 'user:1:'"):
            scoped.get(bucket, "secret")
        with pytest.raises(thisdb.Forbidden, match="a token cannot create buckets"):
            scoped.create_bucket()

    read_only = db_client.create_token(bucket, "", "read", 60)
    with thisdb.Client(token=read_only, base_url=server) as scoped:
        with pytest.raises(thisdb.Forbidden, match="no write permission"):
            scoped.set(bucket, "secret", b"y")


def test_base_url_and_credentials(server, carol, monkeypatch, platform):
    for suffix in ["", "/", "/v1", "/v1/"]:
        with thisdb.Client(carol.key, base_url=server + suffix) as client:
            assert client.base_url == server + "/v1"
            assert platform.bucket(client.create_bucket()) is not None

    monkeypatch.setenv("THISDB_URL", server)
    monkeypatch.setenv("THISDB_API_KEY", carol.key)
    monkeypatch.delenv("THISDB_TOKEN", raising=False)
    with thisdb.Client() as client:
        bucket = client.create_bucket()
        token = client.create_token(bucket, "", "read", 60)
    monkeypatch.delenv("THISDB_API_KEY")
    monkeypatch.setenv("THISDB_TOKEN", token)
    with thisdb.Client() as client:
        assert client.list_keys(bucket).items == []


def test_a_wrong_base_url_path_is_not_the_api(server, carol, platform):
    """The platform's own pages answer a path outside /v1 with HTML: a base URL with a wrong
    path is a configuration error, never a missing key."""
    for wrong in ("/wrong", "/docs", "/api"):
        with thisdb.Client(carol.key, base_url=server + wrong) as client:
            with pytest.raises(thisdb.NotTheAPI, match="not like a ThisDB v1 API") as caught:
                client.get("A" * 20, "k")
            assert not isinstance(caught.value, thisdb.NotFound)
            assert f"check the base URL {server}{wrong}/v1" in str(caught.value)
            with pytest.raises(thisdb.NotTheAPI):
                client.create_bucket()
    assert platform.buckets(carol) == {}


def test_errors_of_the_server_pickle_without_the_key(db_client, carol):
    bucket = db_client.create_bucket()
    with pytest.raises(thisdb.NotFound) as caught:
        db_client.get(bucket, "missing")
    for copied in (pickle.loads(pickle.dumps(caught.value)), copy.deepcopy(caught.value)):
        assert (copied.status, copied.message) == (404, "key not found")
        assert copied.response.status_code == 404
    assert "x-api-key" not in caught.value.response.request.headers
    assert carol.key.encode() not in pickle.dumps(caught.value)
    db_client.set(bucket, "k", b"v")  # the client still sends its key
    assert db_client.get(bucket, "k") == b"v"


def test_rate_limit_figures_of_the_last_answer(db_client):
    assert db_client.rate_limit is None
    db_client.create_bucket()
    first = db_client.rate_limit
    assert first.limit == 1000 and first.remaining == 999
    assert first.reset > time.time() and first.reset % 3600 == 0
    with pytest.raises(thisdb.NotFound):
        db_client.get("A" * 20, "k")  # refused requests count too
    assert db_client.rate_limit.remaining == 998


def test_each_error_status_is_its_exception_with_the_servers_message(server, db_client, platform):
    bucket = db_client.create_bucket()
    db_client.set(bucket, "word", b"abc")

    with pytest.raises(thisdb.BadRequest, match="not an integer") as caught:
        db_client.increment(bucket, "word")
    assert caught.value.status == 400
    with pytest.raises(thisdb.BadRequest, match="ttl must be a whole number"):
        db_client.set(bucket, "k", b"v", ttl=-1)
    with pytest.raises(thisdb.BadRequest, match="limit must be a whole number from 1 to 1000"):
        db_client.list_keys(bucket, limit=1001)

    with thisdb.Client("tdb_wrong", base_url=server) as wrong:
        with pytest.raises(thisdb.Forbidden, match="invalid API key") as caught:
            wrong.create_bucket()
    assert caught.value.status == 403
    assert str(caught.value).startswith("403 Forbidden: invalid API key")

    dave = platform.persona("dave")
    with thisdb.Client(dave.key, base_url=server) as other:
        daves = other.create_bucket()
    with pytest.raises(thisdb.NotFound, match="bucket not found") as caught:
        db_client.get(daves, "k")  # another account's bucket
    assert caught.value.status == 404

    with pytest.raises(thisdb.MethodNotAllowed) as caught:
        db_client.request("PUT", f"/{bucket}")
    assert caught.value.status == 405
    with pytest.raises(thisdb.NotAcceptable, match="format 'xml' is not supported") as caught:
        db_client.request("GET", f"/{bucket}", params={"format": "xml"})
    assert caught.value.status == 406

    db_client.set(bucket, "max", b"x" * 1048576)
    with pytest.raises(thisdb.PayloadTooLarge, match="larger than the limit") as caught:
        db_client.set(bucket, "big", b"x" * 1048577)
    assert caught.value.status == 413
    assert "big" not in platform.stored(bucket)
    assert isinstance(caught.value, thisdb.ApiError)


def test_429_past_the_hourly_limit_carries_retry_after(server, carol, platform):
    # Set before the server's first request of this key: it keeps quotas for a few seconds.
    platform.set_requests_per_hour(carol, 2)
    with thisdb.Client(carol.key, base_url=server, retries=3) as client:
        bucket = client.create_bucket()
        client.set(bucket, "a", b"1")
        started = time.monotonic()
        with pytest.raises(thisdb.RateLimited, match="2 requests per hour") as caught:
            client.set(bucket, "b", b"2")  # the wait (to the hour's end) is beyond max_retry_wait
    assert time.monotonic() - started < 1
    assert caught.value.status == 429
    assert 1 <= caught.value.retry_after <= 3600
    assert client.rate_limit.remaining == 0


def test_429_within_the_second_and_retries_that_wait_for_it(strict_server, carol, platform):
    with thisdb.Client(carol.key, base_url=strict_server) as client:
        bucket = client.create_bucket()
        client.set(bucket, "k", b"1")
        with pytest.raises(thisdb.RateLimited, match="one write per second") as caught:
            client.set(bucket, "k", b"2")
    assert caught.value.retry_after == 1
    assert platform.stored(bucket) == {"k": b"1"}

    with thisdb.Client(carol.key, base_url=strict_server, retries=2) as client:
        assert client.increment(bucket, "n") == 1
        started = time.monotonic()
        assert client.increment(bucket, "n") == 2  # 429, Retry-After: 1, then counted once
    assert time.monotonic() - started >= 0.9
    assert platform.stored(bucket) == {"k": b"1", "n": b"2"}
