"""thisdb.Client against the platform over HTTP: every method, bytes round trips, key encoding,
paging, configuration, and every error mapped from a real answer of the server."""

import http.server
import threading
import time
from datetime import timedelta

import pytest
import thisdb
from django.utils import timezone

from accounts.models import Account
from api.models import Bucket, Item, Token
from tests.conftest import Persona

pytestmark = pytest.mark.django_db(transaction=True)

ALL_BYTES = bytes(range(256))
# Every character a URL treats specially, and segments URL normalization would drop ("." and
# ".."). (A newline is encoded too, but the platform's routes cannot take it yet.)
AWKWARD_KEYS = [
    ".", "..", "../up", "x/./y", "a/b", "/lead", "trail/", "a//b", "sp ace", "q?x=1", "h#ash",
    "per%cent", "%2F", "a%C3%28", "plus+", "semi;colon", "tab\tkey", "cr\rkey", "é日本",
    "\U0001f600", "~tilde", "amp&eq=",
]  # fmt: skip


def make_items(bucket: str, count: int, prefix: str = "k") -> list[str]:
    keys = [f"{prefix}{n:05d}" for n in range(count)]
    Item.objects.bulk_create(Item(bucket_id=bucket, key=k, value=k.encode()) for k in keys)
    return keys


# Buckets


def test_create_bucket_with_the_default_ttl(db_client, carol):
    bucket = db_client.create_bucket()
    assert Bucket.objects.get(pk=bucket, owner=carol.user).default_ttl == 604800


def test_create_bucket_with_default_ttl_zero_sends_zero(db_client):
    bucket = db_client.create_bucket(default_ttl=0)
    assert Bucket.objects.get(pk=bucket).default_ttl == 0


def test_update_bucket(db_client):
    bucket = db_client.create_bucket(default_ttl=60)
    assert db_client.update_bucket(bucket, 0) is None
    assert Bucket.objects.get(pk=bucket).default_ttl == 0
    db_client.update_bucket(bucket, 3600)
    assert Bucket.objects.get(pk=bucket).default_ttl == 3600


def test_delete_bucket(db_client):
    bucket = db_client.create_bucket()
    db_client.set(bucket, "k", b"v")
    db_client.delete_bucket(bucket)
    assert not Bucket.objects.filter(pk=bucket).exists()
    with pytest.raises(thisdb.NotFound, match="bucket not found"):
        db_client.get(bucket, "k")


# Keys


def test_set_and_get_every_byte(db_client):
    bucket = db_client.create_bucket()
    db_client.set(bucket, "bin", ALL_BYTES)
    db_client.set(bucket, "empty", b"")
    db_client.set(bucket, "text", "héllo")  # str is sent as UTF-8
    db_client.set(bucket, "view", memoryview(b"\x00\xff"))

    assert db_client.get(bucket, "bin") == ALL_BYTES
    assert db_client.get(bucket, "empty") == b""
    assert db_client.get(bucket, "text") == "héllo".encode()
    assert db_client.get(bucket, "view") == b"\x00\xff"


def test_keys_are_percent_encoded_exactly(db_client):
    bucket = db_client.create_bucket()
    for key in AWKWARD_KEYS:
        db_client.set(bucket, key, ALL_BYTES + key.encode())

    for key in AWKWARD_KEYS:
        assert db_client.get(bucket, key) == ALL_BYTES + key.encode(), key
    stored = {i.key: bytes(i.value) for i in Item.objects.filter(bucket_id=bucket)}
    assert stored == {key: ALL_BYTES + key.encode() for key in AWKWARD_KEYS}
    listed = db_client.list_keys(bucket, values=True)
    assert {i.key: i.value for i in listed} == stored
    for key in AWKWARD_KEYS:
        db_client.delete(bucket, key)
    assert not Item.objects.filter(bucket_id=bucket).exists()


def test_the_path_on_the_wire_encodes_every_byte_but_unreserved_ones(db_client):
    bucket = db_client.create_bucket()
    with pytest.raises(thisdb.NotFound) as caught:
        db_client.get(bucket, "a b/c?d#e%f\ng~h.i-j_k")
    sent = caught.value.response.request.url.raw_path
    assert sent == f"/v1/{bucket}/a%20b%2Fc%3Fd%23e%25f%0Ag~h.i-j_k".encode()

    with pytest.raises(thisdb.NotFound, match="key not found") as caught:
        db_client.get(bucket, "..")  # reaches the key, not the parent folder
    assert caught.value.response.request.url.raw_path == f"/v1/{bucket}/%2E%2E".encode()


def test_empty_names_are_refused_before_any_request(db_client):
    with pytest.raises(ValueError, match="key cannot be empty"):
        db_client.get("b" * 20, "")
    with pytest.raises(ValueError, match="bucket cannot be empty"):
        db_client.delete_bucket("")
    assert db_client.rate_limit is None  # nothing was sent


def test_set_with_ttl_and_ttl_zero(db_client):
    bucket = db_client.create_bucket(default_ttl=60)
    before = timezone.now()
    db_client.set(bucket, "short", b"v", ttl=3600)
    db_client.set(bucket, "never", b"v", ttl=0)
    db_client.set(bucket, "default", b"v")

    expiry = {i.key: i.expires_at for i in Item.objects.filter(bucket_id=bucket)}
    assert abs(expiry["short"] - before - timedelta(seconds=3600)) < timedelta(seconds=5)
    assert expiry["never"] is None
    assert abs(expiry["default"] - before - timedelta(seconds=60)) < timedelta(seconds=5)


def test_json_helpers(db_client):
    bucket = db_client.create_bucket()
    document = {"name": "Zoë", "tags": ["a", "b"], "n": 1.5, "none": None}
    db_client.set_json(bucket, "doc", document)
    assert db_client.get_json(bucket, "doc") == document
    compact = '{"name":"Zoë","tags":["a","b"],"n":1.5,"none":null}'
    assert db_client.get(bucket, "doc") == compact.encode()


def test_increment(db_client):
    bucket = db_client.create_bucket()
    assert db_client.increment(bucket, "n") == 1
    assert db_client.increment(bucket, "n", by=41) == 42
    assert db_client.increment(bucket, "n", by=-50) == -8
    assert db_client.increment(bucket, "t", by=2, ttl=0) == 2
    assert Item.objects.get(bucket_id=bucket, key="t").expires_at is None
    assert db_client.get(bucket, "n") == b"-8"


def test_delete(db_client):
    bucket = db_client.create_bucket()
    db_client.set(bucket, "k", b"v")
    assert db_client.delete(bucket, "k") is None
    with pytest.raises(thisdb.NotFound, match="key not found"):
        db_client.delete(bucket, "k")


# Listing


def test_list_keys_one_page_with_its_cursor(db_client):
    bucket = db_client.create_bucket()
    for key in ["b", "a", "c", "ab"]:
        db_client.set(bucket, key, key.upper())

    page = db_client.list_keys(bucket, limit=2)
    assert page.keys == ["a", "ab"]
    assert [i.value for i in page] == [None, None]
    assert page.next_cursor

    rest = db_client.list_keys(bucket, limit=2, cursor=page.next_cursor, values=True)
    assert [(i.key, i.value) for i in rest] == [("b", b"B"), ("c", b"C")]
    assert rest.next_cursor is None
    assert db_client.list_keys(bucket, prefix="a").keys == ["a", "ab"]
    assert db_client.list_keys(db_client.create_bucket()).items == []


def test_list_keys_decodes_base64_values(db_client):
    bucket = db_client.create_bucket()
    db_client.set(bucket, "bin", ALL_BYTES)
    db_client.set(bucket, "text", "plain ✓")
    items = {i.key: i for i in db_client.list_keys(bucket, values=True)}
    assert items["bin"].value == ALL_BYTES
    assert items["text"].value == "plain ✓".encode()
    assert items["bin"].ttl is None  # the v1 API does not report remaining TTLs


def test_iter_keys_follows_the_cursor_over_more_than_2000_keys(db_client):
    bucket = db_client.create_bucket()
    keys = make_items(bucket, 2345)
    make_items(bucket, 10, prefix="other")

    listed = list(db_client.iter_keys(bucket, prefix="k", values=True))

    assert [i.key for i in listed] == keys
    assert all(i.value == i.key.encode() for i in listed)
    assert len(list(db_client.iter_keys(bucket, page_size=500))) == 2355


# Tokens


def test_create_token_and_use_it(server, db_client):
    bucket = db_client.create_bucket()
    db_client.set(bucket, "user:1:name", b"alice")
    db_client.set(bucket, "secret", b"x")

    token = db_client.create_token(bucket, "user:1:", ["read", "write"], 600)
    assert len(token) == 40
    row = Token.objects.get(bucket_id=bucket)
    assert (row.prefix, row.can_read, row.can_write) == ("user:1:", True, True)

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


# Configuration


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_base_url_with_or_without_v1(server, carol, suffix):
    with thisdb.Client(carol.key, base_url=server + suffix) as client:
        assert client.base_url == server + "/v1"
        assert Bucket.objects.filter(pk=client.create_bucket()).exists()


def test_settings_from_the_environment(server, carol, monkeypatch):
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


def test_configuration_errors(server, carol, monkeypatch):
    for name in ("THISDB_URL", "THISDB_API_KEY", "THISDB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(thisdb.ConfigurationError, match="no server"):
        thisdb.Client(carol.key)
    with pytest.raises(thisdb.ConfigurationError, match="no credentials"):
        thisdb.Client(base_url=server)
    with pytest.raises(thisdb.ConfigurationError, match="not both"):
        thisdb.Client(carol.key, token="t", base_url=server)
    with pytest.raises(thisdb.ConfigurationError, match="invalid server URL"):
        thisdb.Client(carol.key, base_url="ftp://example.com")


def test_rate_limit_figures_of_the_last_answer(db_client):
    assert db_client.rate_limit is None
    db_client.create_bucket()
    first = db_client.rate_limit
    assert first.limit == 1000 and first.remaining == 999
    assert first.reset > time.time() and first.reset % 3600 == 0
    with pytest.raises(thisdb.NotFound):
        db_client.get("A" * 20, "k")  # refused requests count too
    assert db_client.rate_limit.remaining == 998


# Errors, each from a real answer of the platform


def test_400_bad_request(db_client):
    bucket = db_client.create_bucket()
    db_client.set(bucket, "word", b"abc")
    with pytest.raises(thisdb.BadRequest) as caught:
        db_client.increment(bucket, "word")
    assert caught.value.status == 400
    assert "not an integer" in caught.value.message
    with pytest.raises(thisdb.BadRequest, match="ttl must be a whole number"):
        db_client.set(bucket, "k", b"v", ttl=-1)
    with pytest.raises(thisdb.BadRequest, match="limit must be a whole number from 1 to 1000"):
        db_client.list_keys(bucket, limit=1001)


def test_403_forbidden(server, carol):
    with thisdb.Client("tdb_wrong", base_url=server) as client:
        with pytest.raises(thisdb.Forbidden, match="invalid API key") as caught:
            client.create_bucket()
    assert caught.value.status == 403
    assert str(caught.value).startswith("403 Forbidden: invalid API key")


def test_404_not_found_for_another_accounts_bucket(server, db_client):
    dave = Persona("dave")
    with thisdb.Client(dave.key, base_url=server) as other:
        bucket = other.create_bucket()
        other.set(bucket, "k", b"dave's")
    with pytest.raises(thisdb.NotFound, match="bucket not found") as caught:
        db_client.get(bucket, "k")
    assert caught.value.status == 404


def test_405_and_406(db_client):
    bucket = db_client.create_bucket()
    with pytest.raises(thisdb.MethodNotAllowed):
        db_client.request("PUT", f"/{bucket}")
    with pytest.raises(thisdb.NotAcceptable, match="format 'xml' is not supported") as caught:
        db_client.request("GET", f"/{bucket}", params={"format": "xml"})
    assert caught.value.status == 406


def test_413_payload_too_large(db_client):
    bucket = db_client.create_bucket()
    db_client.set(bucket, "max", b"x" * 1048576)
    with pytest.raises(thisdb.PayloadTooLarge, match="larger than the limit") as caught:
        db_client.set(bucket, "big", b"x" * 1048577)
    assert caught.value.status == 413
    assert not Item.objects.filter(bucket_id=bucket, key="big").exists()


def test_429_past_the_hourly_limit_carries_retry_after(server, carol):
    Account.objects.filter(user=carol.user).update(requests_per_hour=2)
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


def test_429_for_a_second_write_within_the_second(strict_server, carol):
    with thisdb.Client(carol.key, base_url=strict_server) as client:
        bucket = client.create_bucket()
        client.set(bucket, "k", b"1")
        with pytest.raises(thisdb.RateLimited, match="one write per second") as caught:
            client.set(bucket, "k", b"2")
    assert caught.value.retry_after == 1
    assert bytes(Item.objects.get(bucket_id=bucket, key="k").value) == b"1"


def test_retries_wait_as_retry_after_asks(strict_server, carol):
    with thisdb.Client(carol.key, base_url=strict_server, retries=2) as client:
        bucket = client.create_bucket()
        client.set(bucket, "k", b"1")
        started = time.monotonic()
        client.set(bucket, "k", b"2")  # 429, Retry-After: 1, then written
        assert client.increment(bucket, "n") == 1
        assert client.increment(bucket, "n") == 2
    assert time.monotonic() - started >= 1.9
    assert bytes(Item.objects.get(bucket_id=bucket, key="k").value) == b"2"


def test_a_network_error_is_its_own_exception(carol):
    with thisdb.Client(carol.key, base_url="http://127.0.0.1:9") as client:
        with pytest.raises(thisdb.NetworkError) as caught:
            client.create_bucket()
    assert "127.0.0.1:9" in str(caught.value)
    assert caught.value.__cause__ is not None


def test_a_timeout_is_a_network_error(carol):
    with silent_server() as url, thisdb.Client(carol.key, base_url=url, timeout=0.3) as client:
        with pytest.raises(thisdb.NetworkError, match="timed out"):
            client.get("b" * 20, "k")


class _Answers(http.server.BaseHTTPRequestHandler):
    """What a proxy in front of the platform may answer (the platform itself never sends 503)."""

    answers: list[tuple[int, dict[str, str], bytes]] = []

    def do_GET(self):
        status, headers, body = self.answers.pop(0)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class silent_server:
    """A socket that accepts connections and never answers."""

    def __enter__(self):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def __exit__(self, *exc):
        self.sock.close()


def answering(answers):
    _Answers.answers = list(answers)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def test_503_is_retried_after_retry_after_then_unavailable(carol):
    httpd, url = answering(
        [
            (503, {"Retry-After": "1", "Content-Type": "text/plain"}, b"down for maintenance"),
            (200, {"Content-Type": "text/plain"}, b"value"),
            (503, {"Retry-After": "7"}, b"still down"),
            (500, {"Content-Type": "text/html"}, b"<html>oops</html>"),
        ]
    )
    try:
        with thisdb.Client(carol.key, base_url=url, retries=1, max_retry_wait=5) as client:
            started = time.monotonic()
            assert client.get("b" * 20, "k") == b"value"
            assert time.monotonic() - started >= 1
            with pytest.raises(thisdb.Unavailable, match="still down") as caught:
                client.get("b" * 20, "k")  # Retry-After 7 > max_retry_wait: raised at once
            assert caught.value.retry_after == 7
            assert isinstance(caught.value, thisdb.ServerError)
            with pytest.raises(thisdb.ServerError) as caught:
                client.get("b" * 20, "k")
            assert str(caught.value) == "500 Internal Server Error: Internal Server Error"
    finally:
        httpd.shutdown()
        httpd.server_close()
