"""A key is its percent-decoded path taken as strict UTF-8: bytes that are not UTF-8 are a 400
(never stored under another name), and every other key but NUL works end to end, under the test
client, gunicorn and ASGI. Prefixes (tokens, listings) are strict UTF-8 too."""

import asyncio
import http.client
import json
from urllib.parse import quote, unquote

import pytest
from asgiref.sync import async_to_sync

from api.models import Item, Token
from tests.conftest import Persona, token_client, unversioned

FORM = "application/x-www-form-urlencoded"
NOT_UTF8 = (
    b"keys are UTF-8: this path holds bytes that are not valid UTF-8 "
    b"(percent-encode the UTF-8 bytes of the key)"
)

# (the key as sent in the path, the key it names)
ODD_KEYS = [
    ("a%0Ab", "a\nb"),
    ("line%0D%0A", "line\r\n"),
    ("%0A", "\n"),
    ("a%09b", "a\tb"),
    ("a%0Db", "a\rb"),
    ("%01%1F%7F", "\x01\x1f\x7f"),
    ("a%2Fb", "a/b"),
    ("dir/", "dir/"),
    ("a%3Fb%23c", "a?b#c"),
    ("%20lead%20and%20trail%20", " lead and trail "),
    ("a+b", "a+b"),
    ("100%25", "100%"),
    ("a%25C3(", "a%C3("),
    ("%F0%9F%98%80", "\U0001f600"),
    (quote("\ufffd"), "\ufffd"),
    (quote("\U0001f600" * 128), "\U0001f600" * 128),  # 512 bytes of 4-byte characters
    (quote("é" * 256), "é" * 256),  # 512 bytes of 2-byte characters
    (quote("日本" * 85 + "é"), "日本" * 85 + "é"),  # 510 + 2 bytes
    ("%2E%2E", ".."),
]
ODD_IDS = [repr(key)[:24] for _, key in ODD_KEYS]

# Percent-escapes that are not UTF-8: a lone lead byte, 0xFF, an encoded surrogate, an overlong
# slash, a truncated sequence, and one beside a literal "%".
NOT_UTF8_KEYS = ["a%C3%28", "a%FF", "a%ED%A0%80", "%C0%AF", "a%E2%82", "100%25%FF"]


def listed(persona, bucket: str) -> list[dict]:
    """The listing's keys and values (each item's "ttl" is tested in test_list.py)."""
    response = persona.client.get(f"/v1/{bucket}?format=json&values=true")
    assert response.status_code == 200, response.content
    return [
        {k: v for k, v in item.items() if k != "ttl"}
        for item in unversioned(response.json()["items"])
    ]


# Keys that are not UTF-8


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("escaped", NOT_UTF8_KEYS)
def test_a_key_that_is_not_utf8_is_400(alice, bucket, method, escaped):
    response = alice.client.generic(method, f"/v1/{bucket}/{escaped}", b"+1", content_type=FORM)

    assert response.status_code == 400
    assert response.content == NOT_UTF8
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert not Item.objects.filter(bucket_id=bucket).exists()


@pytest.mark.parametrize(
    "query, content_type, body",
    [
        ("?format=json", "application/json", json.dumps({"error": NOT_UTF8.decode()}).encode()),
        ("?format=ndjson", "application/x-ndjson", b'{"error":"' + NOT_UTF8 + b'"}\n'),
    ],
)
def test_the_refusal_comes_in_the_asked_format(alice, bucket, query, content_type, body):
    response = alice.set(bucket, "a%C3%28", "v", query=query)
    assert response.status_code == 400
    assert response["Content-Type"] == content_type
    assert json.loads(response.content) == json.loads(body)


def test_an_invalid_key_never_meets_its_repercented_twin(alice, bucket):
    # Django reads both paths as "a%C3(": the first must be refused, the second is its own key.
    assert alice.set(bucket, "a%C3%28", "refused").status_code == 400
    assert alice.client.get(f"/v1/{bucket}/a%25C3(").status_code == 404

    assert alice.set(bucket, "a%25C3(", "mine").status_code == 200
    assert alice.client.get(f"/v1/{bucket}/a%C3%28").status_code == 400
    assert alice.client.delete(f"/v1/{bucket}/a%C3%28").status_code == 400
    assert listed(alice, bucket) == [{"key": "a%C3(", "value": "mine"}]


# Every other key works


@pytest.mark.parametrize("escaped, key", ODD_KEYS, ids=ODD_IDS)
def test_an_odd_key_round_trips(alice, bucket, escaped, key):
    url = f"/v1/{bucket}/{escaped}"

    assert alice.client.post(url, b"value", content_type=FORM).status_code == 200
    response = alice.client.get(url)
    assert (response.status_code, response.content) == (200, b"value")
    assert list(Item.objects.filter(bucket_id=bucket).values_list("key", flat=True)) == [key]
    assert listed(alice, bucket) == [{"key": key, "value": "value"}]
    assert alice.client.get(f"{url}?format=json").json() == {"key": key, "value": "value"}
    assert alice.client.delete(url).status_code == 200
    assert alice.client.get(url).status_code == 404


def test_an_odd_key_counts_with_patch(alice, bucket):
    url = f"/v1/{bucket}/a%0Ab%25"
    assert alice.client.patch(url, b"+2", content_type="text/plain").content == b"2"
    assert alice.client.patch(url, b"-1", content_type="text/plain").content == b"1"
    assert listed(alice, bucket) == [{"key": "a\nb%", "value": "1"}]


def test_a_key_with_a_newline_gets_cors_headers(alice, bucket):
    alice.set(bucket, "a%0Ab", "v")
    response = alice.client.get(f"/v1/{bucket}/a%0Ab", headers={"Origin": "https://app.example"})
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] in ("*", "https://app.example")


def test_a_key_over_512_bytes_is_still_400(alice, bucket):
    response = alice.set(bucket, quote("\U0001f600" * 128 + "a"), "v")
    assert response.status_code == 400
    assert b"1 to 512 bytes" in response.content


def test_nul_is_the_one_character_a_key_cannot_hold(alice, bucket):
    response = alice.set(bucket, "a%00b", "v")
    assert response.status_code == 400
    assert b"NUL" in response.content


# Prefixes


@pytest.mark.parametrize("prefix", ["%FF", "user%C3%28", "%ED%A0%80"])
def test_a_list_prefix_that_is_not_utf8_is_400(alice, bucket, prefix):
    alice.set(bucket, "user", "v")
    response = alice.client.get(f"/v1/{bucket}?prefix={prefix}")
    assert response.status_code == 400
    assert response.content == (
        b"the query string is not valid UTF-8: percent-encode the UTF-8 bytes of each field"
    )


def test_a_list_prefix_is_read_as_utf8(alice, bucket):
    for key in ["é1", "é2", "e3", "\n4"]:
        alice.set(bucket, quote(key), "v")
    for query in [f"?prefix={quote('é')}", "?prefix=é"]:
        response = alice.client.get(f"/v1/{bucket}{query}&format=json")
        assert [item["key"] for item in response.json()["items"]] == ["é1", "é2"]
    response = alice.client.get(f"/v1/{bucket}?prefix=%0A&format=json")
    assert [item["key"] for item in response.json()["items"]] == ["\n4"]


def test_a_token_prefix_that_is_not_utf8_is_400_in_the_body(alice, bucket):
    body = f"bucket={bucket}&prefix=user%C3%28&permissions=read&ttl=60"
    response = alice.client.post("/v1/tokens", body, content_type=FORM)
    assert response.status_code == 400
    assert response.content == b"the form body is not valid UTF-8"
    assert not Token.objects.exists()


def test_a_token_prefix_that_is_not_utf8_is_400_in_the_query(alice, bucket):
    body = f"bucket={bucket}&permissions=read&ttl=60"
    response = alice.client.post("/v1/tokens?prefix=%FF", body, content_type=FORM)
    assert response.status_code == 400
    assert b"query string is not valid UTF-8" in response.content
    assert not Token.objects.exists()


def multipart(fields: dict[str, bytes]) -> bytes:
    parts = [
        b'--B\r\nContent-Disposition: form-data; name="' + name.encode() + b'"\r\n\r\n' + value
        for name, value in fields.items()
    ]
    return b"\r\n".join(parts) + b"\r\n--B--\r\n"


@pytest.mark.parametrize(
    "prefix, status, stored",
    [("ü:\n".encode(), 200, "ü:\n"), (b"user\xc3(", 400, None), (b"\xff", 400, None)],
)
def test_a_multipart_token_prefix_is_strict_utf8(alice, bucket, prefix, status, stored):
    body = multipart(
        {"bucket": bucket.encode(), "prefix": prefix, "permissions": b"read", "ttl": b"60"}
    )
    response = alice.client.post("/v1/tokens", body, content_type="multipart/form-data; boundary=B")
    assert response.status_code == status, response.content
    assert list(Token.objects.values_list("prefix", flat=True)) == ([stored] if stored else [])


def test_a_token_prefix_holds_any_utf8(alice, bucket):
    prefix = quote("ü:\n")
    body = f"bucket={bucket}&prefix={prefix}&permissions=read,write&ttl=60"
    client = token_client(alice.client.post("/v1/tokens", body, content_type=FORM).content.decode())

    assert client.post(f"/v1/{bucket}/{prefix}key", b"v", content_type=FORM).status_code == 200
    assert client.post(f"/v1/{bucket}/other", b"v", content_type=FORM).status_code == 403
    assert Token.objects.get().prefix == "ü:\n"


# Through a real WSGI server and an ASGI server


def http_call(port: int, method: str, path: str, key: str, body: bytes = b"") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"X-Api-Key": key})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def check_keys_over_http(port: int) -> None:
    carol = Persona("carol")
    bucket = carol.new_bucket()

    for escaped in NOT_UTF8_KEYS:
        for method in ("GET", "POST", "PATCH", "DELETE"):
            status, body = http_call(port, method, f"/v1/{bucket}/{escaped}", carol.key)
            assert (status, body) == (400, NOT_UTF8), (escaped, method)
    assert not Item.objects.filter(bucket_id=bucket).exists()
    assert http_call(port, "GET", f"/v1/{bucket}?prefix=%FF", carol.key)[0] == 400

    for escaped, key in ODD_KEYS:
        url = f"/v1/{bucket}/{escaped}"
        assert http_call(port, "POST", url, carol.key, b"v") == (200, b"OK"), key
        assert http_call(port, "GET", url, carol.key) == (200, b"v"), key
        status, body = http_call(port, "GET", f"/v1/{bucket}?format=json", carol.key)
        assert unversioned(json.loads(body)["items"]) == [{"key": key}], key
        assert http_call(port, "DELETE", url, carol.key) == (200, b"OK"), key


@pytest.mark.django_db(transaction=True)
def test_keys_through_gunicorn(gunicorn_port):
    check_keys_over_http(gunicorn_port)


@pytest.mark.django_db(transaction=True)
def test_keys_through_the_development_server(live_server):
    check_keys_over_http(int(live_server.url.rsplit(":", 1)[1]))


def asgi_call(method: str, raw_path: bytes, key: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request to the ASGI application, with the scope a server such as uvicorn builds: the
    path percent-decoded (escapes that are not UTF-8 become U+FFFD) and raw_path as received."""
    from thisdb_site.asgi import application

    raw, _, query = raw_path.partition(b"?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw.decode("ascii")),
        "raw_path": raw,
        "query_string": query,
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"x-api-key", key.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent, requests = [], [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if requests:
            return requests.pop()
        await asyncio.Event().wait()  # the client stays connected until the answer is sent

    async def send(message):
        sent.append(message)

    async_to_sync(application)(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.django_db(transaction=True)
def test_keys_through_asgi():
    carol = Persona("carol")
    bucket = carol.new_bucket()

    for escaped in NOT_UTF8_KEYS:
        path = f"/v1/{bucket}/{escaped}".encode()
        assert asgi_call("POST", path, carol.key, b"v") == (400, NOT_UTF8), escaped
    assert not Item.objects.filter(bucket_id=bucket).exists()
    assert asgi_call("GET", f"/v1/{bucket}?prefix=%FF".encode(), carol.key)[0] == 400

    for escaped, key in ODD_KEYS:
        path = f"/v1/{bucket}/{escaped}".encode()
        assert asgi_call("POST", path, carol.key, b"v") == (200, b"OK"), key
        assert asgi_call("GET", path, carol.key) == (200, b"v"), key
        _, body = asgi_call("GET", f"/v1/{bucket}?format=json".encode(), carol.key)
        assert unversioned(json.loads(body)["items"]) == [{"key": key}], key
        assert asgi_call("DELETE", path, carol.key) == (200, b"OK"), key
