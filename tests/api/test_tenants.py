"""Tenant isolation on every endpoint: /v1/<bucket> (GET, PATCH, DELETE), /v1/<bucket>/<key>
(GET, POST, PUT, PATCH, DELETE) and POST /v1/tokens. Another account's bucket is a 404 for an
API key and a 403 for a token, never its data, and nothing in it changes."""

import json

import pytest

from api.models import Bucket, Item, Token
from tests.conftest import token_client

FORM = "application/x-www-form-urlencoded"
SECRET_VALUE = b"alice-private-value"
UNKNOWN_BUCKET = "AAAAAAAAAAAAAAAAAAAA"

# (method, path after the bucket, body): every endpoint under /v1/<bucket>.
BUCKET_ENDPOINTS = [
    ("GET", "?values=true", ""),
    ("GET", "?values=true&format=json", ""),
    ("GET", "?values=true&format=ndjson&prefix=sec", ""),
    ("PATCH", "", "default_ttl=5"),
    ("DELETE", "", ""),
]
KEY_ENDPOINTS = [
    ("GET", "/secret", ""),
    ("GET", "/secret?format=json", ""),
    ("POST", "/secret", "bob-value"),
    ("PUT", "/secret", "bob-value"),
    ("POST", "/new", "bob-value"),
    ("PATCH", "/counter", "+1"),
    ("PATCH", "/new-counter", "+1"),
    ("DELETE", "/secret", ""),
]
LIST_AND_KEY_ENDPOINTS = [e for e in BUCKET_ENDPOINTS if e[0] == "GET"] + KEY_ENDPOINTS


def cases(endpoints):
    return [pytest.param(*e, id=f"{e[0]} {e[1] or '/'}") for e in endpoints]


@pytest.fixture
def alices_bucket(alice):
    bucket = alice.new_bucket(default_ttl=1234)
    assert alice.set(bucket, "secret", SECRET_VALUE).status_code == 200
    assert alice.set(bucket, "counter", "5").status_code == 200
    return bucket


@pytest.fixture
def bobs_bucket(bob):
    return bob.new_bucket()


def snapshot(bucket: str):
    """All of a bucket's state: its row, its keys (values, expiry, last write), its tokens."""
    rows = Item.objects.filter(bucket_id=bucket).order_by("key")
    return (
        list(Bucket.objects.filter(pk=bucket).values("owner_id", "default_ttl")),
        [(r.key, bytes(r.value), r.expires_at, r.updated_at) for r in rows],
        list(Token.objects.filter(bucket_id=bucket).values_list("hashed_token", flat=True)),
    )


def send(client, method: str, url: str, body: str):
    return client.generic(method, url, body, content_type=FORM)


def error_message(response) -> str:
    if response["Content-Type"].startswith("text/plain"):
        return response.content.decode()
    return json.loads(response.content)["error"]  # json, or ndjson's one line


def assert_reveals_nothing(response):
    for secret in (SECRET_VALUE, b"secret", b"counter", b"1234"):
        assert secret not in response.content


# Another account's API key


@pytest.mark.parametrize("method, path, body", cases(BUCKET_ENDPOINTS + KEY_ENDPOINTS))
def test_another_accounts_api_key_gets_404_and_changes_nothing(
    alice, bob, alices_bucket, bobs_bucket, method, path, body
):
    before = snapshot(alices_bucket)

    response = send(bob.client, method, f"/v1/{alices_bucket}{path}", body)

    assert response.status_code == 404
    assert error_message(response) == "bucket not found"
    assert_reveals_nothing(response)
    assert snapshot(alices_bucket) == before
    assert alice.client.get(f"/v1/{alices_bucket}/secret").content == SECRET_VALUE


@pytest.mark.parametrize("method, path, body", cases(BUCKET_ENDPOINTS + KEY_ENDPOINTS))
def test_another_accounts_bucket_looks_like_one_that_does_not_exist(
    bob, alices_bucket, method, path, body
):
    theirs = send(bob.client, method, f"/v1/{alices_bucket}{path}", body)
    unknown = send(bob.client, method, f"/v1/{UNKNOWN_BUCKET}{path}", body)

    assert (theirs.status_code, theirs.content) == (unknown.status_code, unknown.content)
    assert theirs["Content-Type"] == unknown["Content-Type"]


def test_patch_of_another_accounts_bucket_keeps_its_default_ttl(bob, alices_bucket):
    response = bob.client.patch(f"/v1/{alices_bucket}", "default_ttl=5", content_type=FORM)
    assert response.status_code == 404
    assert Bucket.objects.get(pk=alices_bucket).default_ttl == 1234


def test_delete_of_another_accounts_bucket_keeps_it(bob, alices_bucket):
    assert bob.client.delete(f"/v1/{alices_bucket}").status_code == 404
    assert Bucket.objects.filter(pk=alices_bucket).exists()
    assert Item.objects.filter(bucket_id=alices_bucket).count() == 2


def test_a_token_for_another_accounts_bucket_is_404_and_not_created(alice, bob, alices_bucket):
    alice.token(alices_bucket, "", "read")  # alice's own token, which must stay hers alone
    body = f"bucket={alices_bucket}&prefix=&permissions=read,write&ttl=3600"

    response = bob.client.post("/v1/tokens", body, content_type=FORM)

    assert response.status_code == 404
    assert response.content == b"bucket not found"
    assert Token.objects.count() == 1
    assert not Token.objects.filter(created_by=bob.api_key).exists()


def test_bob_still_uses_his_own_bucket(bob, alices_bucket, bobs_bucket):
    # The refusals above are about ownership, not about bob's key being refused altogether.
    assert bob.set(bobs_bucket, "secret", "bob-value").status_code == 200
    assert bob.client.get(f"/v1/{bobs_bucket}/secret").content == b"bob-value"
    assert bob.client.get(f"/v1/{bobs_bucket}?values=true").content == b"secret\tbob-value"
    assert Item.objects.get(bucket_id=alices_bucket, key="secret").value == SECRET_VALUE


# Another account's token


@pytest.mark.parametrize("method, path, body", cases(LIST_AND_KEY_ENDPOINTS))
def test_another_accounts_token_gets_403_and_changes_nothing(
    alice, bob, alices_bucket, bobs_bucket, method, path, body
):
    bobs_token = token_client(bob.token(bobs_bucket, "", "read,write"))
    before = snapshot(alices_bucket)

    response = send(bobs_token, method, f"/v1/{alices_bucket}{path}", body)

    assert response.status_code == 403
    assert_reveals_nothing(response)
    assert snapshot(alices_bucket) == before
    assert alice.client.get(f"/v1/{alices_bucket}/secret").content == SECRET_VALUE


@pytest.mark.parametrize("method, body", [("PATCH", "default_ttl=5"), ("DELETE", "")])
def test_another_accounts_token_cannot_change_or_delete_the_bucket(
    bob, alices_bucket, bobs_bucket, method, body
):
    bobs_token = token_client(bob.token(bobs_bucket, "", "read,write"))
    before = snapshot(alices_bucket)
    response = send(bobs_token, method, f"/v1/{alices_bucket}", body)
    assert response.status_code == 403
    assert snapshot(alices_bucket) == before


def test_another_accounts_token_works_on_its_own_bucket(bob, bobs_bucket):
    bobs_token = token_client(bob.token(bobs_bucket, "", "read,write"))
    assert send(bobs_token, "POST", f"/v1/{bobs_bucket}/k", "v").status_code == 200
    assert bobs_token.get(f"/v1/{bobs_bucket}/k").content == b"v"


# Ownership is decided before the per-key write limit


@pytest.fixture
def write_limit_on(settings):
    settings.THISDB_KEY_WRITES_PER_SECOND = 1


@pytest.mark.parametrize(
    "method, body", [("POST", "bob"), ("PUT", "bob"), ("PATCH", "+1"), ("DELETE", "")]
)
def test_another_accounts_write_is_404_not_429_right_after_the_owners(
    alice, bob, alices_bucket, method, body, write_limit_on
):
    assert alice.set(alices_bucket, "k", "1").status_code == 200
    assert alice.set(alices_bucket, "k", "2").status_code == 429  # the limit is on

    response = send(bob.client, method, f"/v1/{alices_bucket}/k", body)

    assert response.status_code == 404
    assert response.content == b"bucket not found"
    assert "Retry-After" not in response
    assert Item.objects.get(bucket_id=alices_bucket, key="k").value == b"1"


def test_another_accounts_refused_write_does_not_take_the_owners_slot(
    alice, bob, alices_bucket, write_limit_on
):
    assert send(bob.client, "POST", f"/v1/{alices_bucket}/k", "bob").status_code == 404
    assert alice.set(alices_bucket, "k", "alice").status_code == 200
    assert Item.objects.get(bucket_id=alices_bucket, key="k").value == b"alice"


def test_the_same_key_in_two_accounts_buckets_has_two_write_slots(
    alice, bob, alices_bucket, bobs_bucket, write_limit_on
):
    assert alice.set(alices_bucket, "k", "alice").status_code == 200
    assert bob.set(bobs_bucket, "k", "bob").status_code == 200
