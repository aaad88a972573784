"""POST /v1/tokens: create a token; then X-Token on /v1/<bucket> and /v1/<bucket>/<key>: one
bucket, one prefix, read and/or write, until it expires."""

import hashlib
import re
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from api import lifecycle, principals
from api.inputs import encode_cursor
from api.models import Bucket, Item, Token
from tests.conftest import token_client, unversioned

FORM = "application/x-www-form-urlencoded"
TOKEN_RE = re.compile(r"[a-z0-9]{40}")


def spec_body(bucket: str) -> str:
    """The body of the spec's example."""
    return f"bucket={bucket}&prefix=user:joebloggs:&permissions=read,write&ttl=3600"


def create(persona, body, content_type=FORM, path="/v1/tokens"):
    return persona.client.post(path, body, content_type=content_type)


def items(bucket: str) -> list[tuple]:
    """Every row of a bucket, to show that a refused request changed nothing."""
    rows = Item.objects.filter(bucket_id=bucket).order_by("key")
    return [(r.key, bytes(r.value), r.expires_at, r.updated_at) for r in rows]


def send(client, method: str, url: str, body: bytes | str = b""):
    return client.generic(method, url, body, content_type="text/plain")


# Creating tokens


def test_it_creates_a_token_from_the_spec_example(alice, bucket):
    response = create(alice, spec_body(bucket))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    token = response.content.decode()
    assert TOKEN_RE.fullmatch(token)
    row = Token.objects.get()
    assert row.bucket_id == bucket
    assert row.prefix == "user:joebloggs:"
    assert row.can_read and row.can_write
    assert row.created_by_id == alice.api_key.id
    expected = timezone.now() + timedelta(seconds=3600)
    assert expected - timedelta(seconds=5) < row.expires_at <= expected


def test_the_token_is_stored_only_hashed(alice, bucket):
    token = create(alice, spec_body(bucket)).content.decode()

    row = Token.objects.values().get()
    assert row["hashed_token"] != token
    assert row["hashed_token"] == hashlib.sha256(token.encode()).hexdigest()
    assert all(token not in str(value) for value in row.values())


def test_each_call_makes_a_new_token(alice, bucket):
    first = create(alice, spec_body(bucket)).content
    second = create(alice, spec_body(bucket)).content
    assert first != second
    assert Token.objects.count() == 2


@pytest.mark.parametrize("how", ["?format=json", "accept"])
def test_json_format_of_a_token(alice, bucket, how):
    if how == "accept":
        response = alice.client.post(
            "/v1/tokens",
            spec_body(bucket),
            content_type=FORM,
            headers={"Accept": "application/json"},
        )
    else:
        response = create(alice, spec_body(bucket), path="/v1/tokens?format=json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert list(response.json()) == ["token"]
    assert TOKEN_RE.fullmatch(response.json()["token"])


@pytest.mark.parametrize(
    "content_type", [FORM, "text/plain;charset=UTF-8", "text/plain", "application/octet-stream"]
)
def test_the_form_body_is_read_whatever_its_content_type(alice, bucket, content_type):
    # The spec's JS fetch example sends its string body, so it goes out as text/plain.
    response = create(alice, spec_body(bucket), content_type=content_type)
    assert response.status_code == 200, response.content

    writer = token_client(response.content.decode())
    assert (
        send(writer, "POST", f"/v1/{bucket}/user:joebloggs:email", "joe@example.com").status_code
        == 200
    )
    assert alice.client.get(f"/v1/{bucket}/user:joebloggs:email").content == b"joe@example.com"


def test_a_multipart_form_works_too(alice, bucket):
    fields = {"bucket": bucket, "prefix": "p:", "permissions": "read", "ttl": "60"}
    response = alice.client.post("/v1/tokens", fields)  # the test client sends multipart
    assert response.status_code == 200, response.content
    assert Token.objects.get().prefix == "p:"


@pytest.mark.parametrize("missing", ["bucket", "prefix", "permissions", "ttl"])
def test_each_missing_field_is_400_naming_it(alice, bucket, missing):
    fields = {"bucket": bucket, "prefix": "user:", "permissions": "read", "ttl": "60"}
    del fields[missing]
    body = "&".join(f"{name}={value}" for name, value in fields.items())

    response = create(alice, body)

    assert response.status_code == 400
    assert response.content.startswith(f"missing field(s): {missing} ".encode())
    assert not Token.objects.exists()


def test_all_missing_fields_are_named(alice):
    response = create(alice, "")
    assert response.status_code == 400
    assert b"bucket, prefix, permissions, ttl" in response.content


def test_an_empty_prefix_is_given_not_missing(alice, bucket):
    response = create(alice, f"bucket={bucket}&prefix=&permissions=read&ttl=60")
    assert response.status_code == 200
    assert Token.objects.get().prefix == ""


@pytest.mark.parametrize("permissions", ["admin", "", "read,delete", ",", "readwrite"])
def test_bad_permissions_are_400(alice, bucket, permissions):
    response = create(alice, f"bucket={bucket}&prefix=&permissions={permissions}&ttl=60")
    assert response.status_code == 400
    assert response.content == b"permissions must be read, write or read,write"
    assert not Token.objects.exists()


@pytest.mark.parametrize(
    "permissions, can_read, can_write",
    [
        ("read", True, False),
        ("write", False, True),
        ("read,write", True, True),
        ("write,read", True, True),
    ],
)
def test_permissions_are_stored(alice, bucket, permissions, can_read, can_write):
    create(alice, f"bucket={bucket}&prefix=&permissions={permissions}&ttl=60")
    row = Token.objects.get()
    assert (row.can_read, row.can_write) == (can_read, can_write)


@pytest.mark.parametrize("ttl", ["0", "86401", "abc", "-1", "1.5", ""])
def test_bad_ttl_is_400(alice, bucket, ttl):
    response = create(alice, f"bucket={bucket}&prefix=&permissions=read&ttl={ttl}")
    assert response.status_code == 400
    assert b"ttl must be a whole number from 1 to 86400" in response.content
    assert not Token.objects.exists()


def test_ttl_of_a_day_is_the_maximum_and_allowed(alice, bucket):
    response = create(alice, f"bucket={bucket}&prefix=&permissions=read&ttl=86400")
    assert response.status_code == 200
    expected = timezone.now() + timedelta(seconds=86400)
    assert expected - timedelta(seconds=5) < Token.objects.get().expires_at <= expected


@pytest.mark.parametrize(
    "bad_bucket", ["AAAAAAAAAAAAAAAAAAAA", "short", "A" * 21, "AAAAAAAAAAAAAAAAAAA-"]
)
def test_unknown_or_malformed_bucket_is_404(alice, bad_bucket):
    response = create(alice, f"bucket={bad_bucket}&prefix=&permissions=read&ttl=60")
    assert response.status_code == 404
    assert response.content == b"bucket not found"
    assert not Token.objects.exists()


def test_creating_a_token_needs_credentials(bucket, client):
    response = client.post("/v1/tokens", spec_body(bucket), content_type=FORM)
    assert response.status_code == 403
    assert not Token.objects.exists()


# Prefixes


def test_a_token_reads_keys_under_its_prefix_only(alice, bucket):
    for key in ("user:1", "user2:1", "use"):
        alice.set(bucket, key, f"value of {key}")
    reader = token_client(alice.token(bucket, "user:", "read"))

    response = reader.get(f"/v1/{bucket}/user:1")
    assert response.status_code == 200
    assert response.content == b"value of user:1"
    for key in ("user2:1", "use"):
        response = reader.get(f"/v1/{bucket}/{key}")
        assert response.status_code == 403
        assert b"value of" not in response.content
        assert response.content == b"this token only covers keys starting with 'user:'"


def test_a_token_for_a_longer_prefix_cannot_read_a_shorter_one(alice, bucket):
    alice.set(bucket, "user:1", "one")
    reader = token_client(alice.token(bucket, "user2:", "read"))
    response = reader.get(f"/v1/{bucket}/user:1")
    assert response.status_code == 403
    assert b"one" not in response.content


def test_the_full_key_as_prefix_reaches_that_key(alice, bucket):
    alice.set(bucket, "user:joe:email", "joe@example.com")
    reader = token_client(alice.token(bucket, "user:joe:email", "read"))
    assert reader.get(f"/v1/{bucket}/user:joe:email").content == b"joe@example.com"


def test_a_token_writes_keys_under_its_prefix_only(alice, bucket):
    writer = token_client(alice.token(bucket, "user:", "write"))

    assert send(writer, "POST", f"/v1/{bucket}/user:1", "ok").status_code == 200
    assert send(writer, "POST", f"/v1/{bucket}/user2:1", "no").status_code == 403
    assert send(writer, "PATCH", f"/v1/{bucket}/use", "+1").status_code == 403
    assert [row[0] for row in items(bucket)] == ["user:1"]


def test_an_empty_prefix_covers_the_whole_bucket(alice, bucket):
    alice.set(bucket, "anything", "a")
    client = token_client(alice.token(bucket, "", "read,write"))

    assert client.get(f"/v1/{bucket}/anything").content == b"a"
    assert send(client, "POST", f"/v1/{bucket}/z/y/x", "b").status_code == 200
    assert client.get(f"/v1/{bucket}").content == b"anything\nz/y/x"


# Permissions


def test_a_read_only_token_reads(alice, bucket):
    alice.set(bucket, "k", "v")
    reader = token_client(alice.token(bucket, "", "read"))
    response = reader.get(f"/v1/{bucket}/k")
    assert response.status_code == 200
    assert response.content == b"v"
    assert reader.get(f"/v1/{bucket}").content == b"k"


@pytest.mark.parametrize(
    "method, body", [("POST", "x"), ("PUT", "x"), ("PATCH", "+1"), ("DELETE", "")]
)
def test_a_read_only_token_cannot_write(alice, bucket, method, body):
    alice.set(bucket, "k", "5")
    before = items(bucket)
    reader = token_client(alice.token(bucket, "", "read"))

    for key in ("k", "new"):
        response = send(reader, method, f"/v1/{bucket}/{key}", body)
        assert response.status_code == 403
        assert response.content == b"this token has no write permission"
    assert items(bucket) == before


def test_a_write_only_token_sets_increments_and_deletes(alice, bucket):
    writer = token_client(alice.token(bucket, "", "write"))

    assert send(writer, "POST", f"/v1/{bucket}/a", "one").status_code == 200
    assert send(writer, "PUT", f"/v1/{bucket}/b", "two").status_code == 200
    response = send(writer, "PATCH", f"/v1/{bucket}/n", "+3")
    assert (response.status_code, response.content) == (200, b"3")
    assert send(writer, "DELETE", f"/v1/{bucket}/a").status_code == 200
    assert [(row[0], row[1]) for row in items(bucket)] == [("b", b"two"), ("n", b"3")]


def test_a_write_only_token_cannot_read_or_list(alice, bucket):
    alice.set(bucket, "k", "secret")
    writer = token_client(alice.token(bucket, "", "write"))

    for url in (f"/v1/{bucket}/k", f"/v1/{bucket}", f"/v1/{bucket}?values=true"):
        response = writer.get(url)
        assert response.status_code == 403
        assert response.content == b"this token has no read permission"


def test_a_read_write_token_does_both(alice, bucket):
    client = token_client(alice.token(bucket, "p:", "read,write"))
    assert send(client, "POST", f"/v1/{bucket}/p:k", "v").status_code == 200
    assert client.get(f"/v1/{bucket}/p:k").content == b"v"
    assert send(client, "PATCH", f"/v1/{bucket}/p:n", "+2").content == b"2"
    assert client.get(f"/v1/{bucket}?values=true").content == b"p:k\tv\np:n\t2"


def test_token_errors_follow_the_format(alice, bucket):
    reader = token_client(alice.token(bucket, "", "read"))
    response = reader.post(f"/v1/{bucket}/k?format=json", b"x", content_type="text/plain")
    assert response.status_code == 403
    assert response.json() == {"error": "this token has no write permission"}


# Listing


@pytest.fixture
def listed(alice, bucket):
    for key in ("a", "use", "user:1", "user:10", "user:2", "user2:1", "z"):
        alice.set(bucket, key, f"v-{key}")
    return token_client(alice.token(bucket, "user:", "read"))


def test_a_token_lists_only_its_prefix(bucket, listed):
    response = listed.get(f"/v1/{bucket}?values=true&format=json")
    assert response.status_code == 200
    body = response.json()
    for item in body["items"]:
        assert item.pop("ttl") > 0
    body["items"] = unversioned(body["items"])
    assert body == {
        "items": [
            {"key": "user:1", "value": "v-user:1"},
            {"key": "user:10", "value": "v-user:10"},
            {"key": "user:2", "value": "v-user:2"},
        ],
        "next_cursor": None,
    }


def test_a_prefix_inside_the_tokens_narrows_the_list(bucket, listed):
    assert listed.get(f"/v1/{bucket}?prefix=user:1").content == b"user:1\nuser:10"


def test_a_prefix_wider_than_the_tokens_lists_only_the_tokens(bucket, listed):
    assert listed.get(f"/v1/{bucket}?prefix=use").content == b"user:1\nuser:10\nuser:2"


@pytest.mark.parametrize("prefix", ["a", "user2:", "z", "user;"])
def test_a_prefix_outside_the_tokens_is_403(bucket, listed, prefix):
    response = listed.get(f"/v1/{bucket}?prefix={prefix}&values=true")
    assert response.status_code == 403
    assert b"v-" not in response.content


def test_pages_of_a_token_stay_inside_its_prefix(bucket, listed):
    response = listed.get(f"/v1/{bucket}?limit=2")
    assert response.content == b"user:1\nuser:10"
    page2 = listed.get(f"/v1/{bucket}?limit=2&cursor={response['X-Next-Cursor']}")
    assert page2.content == b"user:2"
    assert "X-Next-Cursor" not in page2


@pytest.mark.parametrize("last_key", ["a", "use", "user:2", "user2:"])
def test_a_forged_cursor_does_not_lead_a_token_outside_its_prefix(bucket, listed, last_key):
    response = listed.get(f"/v1/{bucket}?cursor={encode_cursor(last_key)}")
    assert response.status_code == 200
    keys = response.content.decode().split("\n") if response.content else []
    assert all(key.startswith("user:") for key in keys)


# Expiry


def test_an_expired_token_is_refused(alice, bucket):
    alice.set(bucket, "k", "v")
    token = alice.token(bucket, "", "read,write")
    Token.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = token_client(token).get(f"/v1/{bucket}/k")

    assert response.status_code == 403
    assert response.content.startswith(b"invalid or expired token")
    assert Token.objects.exists()  # the sweeper has not run: the row is there, still refused


def test_a_token_that_expires_after_use_is_refused(alice, bucket):
    alice.set(bucket, "k", "v")
    client = token_client(alice.token(bucket, "", "read,write", ttl=1))
    assert client.get(f"/v1/{bucket}/k").status_code == 200  # now cached

    time.sleep(1.1)

    assert client.get(f"/v1/{bucket}/k").status_code == 403
    assert client.post(f"/v1/{bucket}/k", b"late", content_type="text/plain").status_code == 403
    assert items(bucket)[0][1] == b"v"


@pytest.mark.parametrize("token", ["", "x" * 39, "X" * 40, "0" * 40, "a" * 41])
def test_unknown_or_malformed_token_is_403(bucket, token):
    response = token_client(token).get(f"/v1/{bucket}")
    assert response.status_code == 403


# What a token outlives


@pytest.mark.parametrize(
    "method, key, body", [("POST", "k", "x"), ("PUT", "new", "x"), ("PATCH", "n", "+1")]
)
def test_a_token_of_a_deleted_bucket_writes_nothing(alice, bucket, method, key, body):
    client = token_client(alice.token(bucket, "", "read,write"))
    assert send(client, "POST", f"/v1/{bucket}/k", "v").status_code == 200  # warms the caches
    assert alice.client.delete(f"/v1/{bucket}").status_code == 200

    response = send(client, method, f"/v1/{bucket}/{key}", body)

    assert response.status_code in (403, 404)
    assert not Item.objects.filter(bucket_id=bucket).exists()
    assert not Token.objects.exists()
    assert client.get(f"/v1/{bucket}").status_code in (403, 404)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("method, body", [("POST", "x"), ("PATCH", "+1")])
def test_a_bucket_deleted_by_another_worker_refuses_a_cached_token(alice, bucket, method, body):
    # Another worker deletes the bucket: this one still has the token and the bucket cached,
    # so only the database's foreign key can refuse the write.
    client = token_client(alice.token(bucket, "", "read,write"))
    assert send(client, "POST", f"/v1/{bucket}/k", "v").status_code == 200
    Bucket.objects.filter(pk=bucket).delete()

    response = send(client, method, f"/v1/{bucket}/k", body)

    assert response.status_code == 404
    assert response.content == b"bucket not found"
    assert not Item.objects.filter(bucket_id=bucket).exists()


def test_a_token_dies_with_its_revoked_api_key(alice, bucket):
    alice.set(bucket, "k", "v")
    client = token_client(alice.token(bucket, "", "read,write"))
    assert client.get(f"/v1/{bucket}/k").status_code == 200

    lifecycle.revoke_api_key(alice.api_key)
    principals.forget_all()  # what another worker's cache holds at most 10 s

    assert client.get(f"/v1/{bucket}/k").status_code == 403
    assert client.post(f"/v1/{bucket}/k", b"x", content_type="text/plain").status_code == 403
    assert items(bucket)[0][1] == b"v"


def test_a_cached_token_is_refused_at_once_in_the_worker_that_revokes_its_key(alice, bucket):
    alice.set(bucket, "k", "v")
    client = token_client(alice.token(bucket, "", "read,write"))
    assert client.get(f"/v1/{bucket}/k").status_code == 200  # the token is now cached

    lifecycle.revoke_api_key(alice.api_key)  # no cache clearing: it drops the key's tokens

    assert client.get(f"/v1/{bucket}/k").status_code == 403
    assert client.post(f"/v1/{bucket}/k", b"x", content_type="text/plain").status_code == 403
    assert items(bucket)[0][1] == b"v"


def test_an_unused_token_is_refused_at_once_when_its_key_is_revoked(alice, bucket):
    alice.set(bucket, "k", "v")
    token = alice.token(bucket, "", "read")
    lifecycle.revoke_api_key(alice.api_key)
    assert token_client(token).get(f"/v1/{bucket}/k").status_code == 403


def test_a_token_survives_another_key_of_the_account_being_revoked(alice, bucket):
    alice.set(bucket, "k", "v")
    token = alice.token(bucket, "", "read")
    other, _ = ApiKey.objects.create_key(alice.user, name="other")
    lifecycle.revoke_api_key(other)
    assert token_client(token).get(f"/v1/{bucket}/k").content == b"v"


# What a token can never do


def test_a_token_cannot_create_a_bucket(alice, bucket):
    client = token_client(alice.token(bucket, "", "read,write"))
    response = client.post("/v1/", "", content_type=FORM)
    assert response.status_code == 403
    assert b"X-Api-Key" in response.content
    assert list(Bucket.objects.values_list("id", flat=True)) == [bucket]


def test_a_token_cannot_create_a_token(alice, bucket):
    client = token_client(alice.token(bucket, "", "read,write"))
    response = client.post("/v1/tokens", spec_body(bucket), content_type=FORM)
    assert response.status_code == 403
    assert not TOKEN_RE.search(response.content.decode())
    assert Token.objects.count() == 1


def test_a_token_cannot_change_a_bucket(alice):
    bucket = alice.new_bucket(default_ttl=1234)
    client = token_client(alice.token(bucket, "", "read,write"))
    response = client.patch(f"/v1/{bucket}", "default_ttl=5", content_type=FORM)
    assert response.status_code == 403
    assert Bucket.objects.get(pk=bucket).default_ttl == 1234


def test_a_token_cannot_delete_a_bucket(alice, bucket):
    alice.set(bucket, "k", "v")
    client = token_client(alice.token(bucket, "", "read,write"))
    assert client.delete(f"/v1/{bucket}").status_code == 403
    assert Bucket.objects.filter(pk=bucket).exists()
    assert items(bucket)[0][1] == b"v"


@pytest.mark.parametrize(
    "method, key, body",
    [
        ("GET", "k", ""),
        ("POST", "k", "x"),
        ("PATCH", "n", "+1"),
        ("DELETE", "k", ""),
        ("GET", "", ""),
    ],
)
def test_a_token_for_one_bucket_is_403_on_another(alice, bucket, method, key, body):
    other = alice.new_bucket()
    alice.set(other, "k", "other-value")
    client = token_client(alice.token(bucket, "", "read,write"))
    before = items(other)

    url = f"/v1/{other}/{key}" if key else f"/v1/{other}"
    response = send(client, method, url, body)

    assert response.status_code == 403
    assert response.content == b"this token is for another bucket"
    assert items(other) == before


# Both headers


def test_the_api_key_wins_over_a_token(alice, bucket):
    token = alice.token(bucket, "only:", "read")  # could neither write nor reach "k"
    both = {"X-Api-Key": alice.key, "X-Token": token}

    response = alice.client.post(f"/v1/{bucket}/k", b"v", content_type="text/plain", headers=both)
    assert response.status_code == 200
    assert alice.client.patch(f"/v1/{bucket}", "default_ttl=5", headers=both).status_code == 200


def test_another_accounts_api_key_wins_over_a_token(alice, bob, bucket):
    alice.set(bucket, "k", "alice-value")
    token = alice.token(bucket, "", "read,write")
    response = bob.client.get(f"/v1/{bucket}/k", headers={"X-Token": token})
    assert response.status_code == 404
    assert b"alice-value" not in response.content


def test_a_bad_api_key_is_not_rescued_by_a_good_token(alice, bucket, client):
    token = alice.token(bucket, "", "read,write")
    response = client.get(f"/v1/{bucket}", headers={"X-Api-Key": "wrong", "X-Token": token})
    assert response.status_code == 403
    assert response.content.startswith(b"invalid API key")
