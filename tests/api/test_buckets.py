"""POST /v1/ (and /v1): create a bucket; PATCH /v1/<bucket>: change its default_ttl;
DELETE /v1/<bucket>: delete it with its keys and tokens. Plus the 403/404/405 answers of these."""

import json
import re

import pytest
from django.conf import settings

from api.models import Bucket, Item, Token
from tests.conftest import token_client

FORM = "application/x-www-form-urlencoded"
BUCKET_ID = re.compile(r"[A-Za-z0-9]{20}")
UNKNOWN_BUCKET = "AAAAAAAAAAAAAAAAAAAA"
SPEC_DEFAULT_TTL = 604800
BAD_TTLS = ["-1", "abc", "1.5", "", str(settings.THISDB_MAX_TTL + 1), "99999999999999999999"]


def owned(persona) -> list[Bucket]:
    return list(Bucket.objects.filter(owner=persona.user))


def patch(persona, bucket: str, body: str, content_type: str = FORM):
    return persona.client.patch(f"/v1/{bucket}", body, content_type=content_type)


# Creating buckets


@pytest.mark.parametrize("path", ["/v1/", "/v1"])
def test_it_creates_a_bucket(alice, path):
    response = alice.client.post(path, "", content_type=FORM)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    bucket_id = response.content.decode()
    assert BUCKET_ID.fullmatch(bucket_id)
    assert [b.id for b in owned(alice)] == [bucket_id]


def test_a_new_bucket_has_the_spec_default_ttl(alice):
    bucket_id = alice.client.post("/v1/").content.decode()
    assert Bucket.objects.get(pk=bucket_id).default_ttl == SPEC_DEFAULT_TTL


def test_each_bucket_gets_its_own_id(alice):
    ids = {alice.new_bucket() for _ in range(5)}
    assert len(ids) == 5
    assert all(BUCKET_ID.fullmatch(i) for i in ids)


def test_it_creates_a_bucket_in_json(alice):
    response = alice.client.post("/v1/?format=json")
    assert response.status_code == 200
    bucket_id = response.json()["bucket"]
    assert response.json() == {"bucket": bucket_id}
    assert Bucket.objects.filter(pk=bucket_id, owner=alice.user).exists()


@pytest.mark.parametrize("default_ttl", [0, 1, 3600, settings.THISDB_MAX_TTL])
def test_it_stores_the_default_ttl(alice, default_ttl):
    bucket_id = alice.new_bucket(default_ttl=default_ttl)
    assert Bucket.objects.get(pk=bucket_id).default_ttl == default_ttl


@pytest.mark.parametrize(
    "content_type",
    [FORM, "text/plain", "text/plain;charset=UTF-8", "application/octet-stream", ""],
    ids=["form", "text-plain", "js-fetch", "octet-stream", "none"],
)
def test_the_form_body_is_read_whatever_its_content_type(alice, content_type):
    response = alice.client.post("/v1/", "default_ttl=3600", content_type=content_type)
    assert response.status_code == 200, response.content
    assert Bucket.objects.get(pk=response.content.decode()).default_ttl == 3600


def test_a_multipart_form_body_is_read(alice):
    response = alice.client.post("/v1/", {"default_ttl": "120"})  # the client sends multipart
    assert response.status_code == 200, response.content
    assert Bucket.objects.get(pk=response.content.decode()).default_ttl == 120


def test_a_query_string_field_counts_too(alice):
    response = alice.client.post("/v1/?default_ttl=90")
    assert Bucket.objects.get(pk=response.content.decode()).default_ttl == 90


@pytest.mark.parametrize("value", BAD_TTLS)
def test_bad_default_ttl_is_400_and_no_bucket_is_created(alice, value):
    response = alice.client.post("/v1/", f"default_ttl={value}", content_type=FORM)

    assert response.status_code == 400
    assert b"default_ttl must be a whole number" in response.content
    assert owned(alice) == []


def test_a_token_cannot_create_a_bucket(alice, bucket):
    response = token_client(alice.token(bucket, "")).post("/v1/", "", content_type=FORM)
    assert response.status_code == 403
    assert [b.id for b in owned(alice)] == [bucket]


# Updating a bucket


def test_it_updates_the_default_ttl(alice, bucket):
    response = patch(alice, bucket, "default_ttl=3600")

    assert response.status_code == 200
    assert response.content == b"OK"
    assert Bucket.objects.get(pk=bucket).default_ttl == 3600


def test_the_new_default_ttl_applies_to_the_next_write(alice, bucket):
    patch(alice, bucket, "default_ttl=0")
    alice.set(bucket, "foo", "bar")
    assert Item.objects.get(bucket_id=bucket, key="foo").expires_at is None


def test_ttl_is_accepted_as_another_name_for_default_ttl(alice, bucket):
    response = patch(alice, bucket, "ttl=3600")  # as the JS and PHP SDKs send it
    assert response.status_code == 200
    assert Bucket.objects.get(pk=bucket).default_ttl == 3600


def test_default_ttl_wins_over_ttl(alice, bucket):
    patch(alice, bucket, "ttl=10&default_ttl=20")
    assert Bucket.objects.get(pk=bucket).default_ttl == 20


def test_a_bad_ttl_beside_default_ttl_is_400(alice, bucket):
    response = patch(alice, bucket, "default_ttl=20&ttl=315360001")
    assert response.status_code == 400
    assert Bucket.objects.get(pk=bucket).default_ttl == SPEC_DEFAULT_TTL


def test_update_reads_a_form_sent_as_text_plain(alice, bucket):
    response = patch(alice, bucket, "default_ttl=42", content_type="text/plain;charset=UTF-8")
    assert response.status_code == 200, response.content
    assert Bucket.objects.get(pk=bucket).default_ttl == 42


def test_update_reads_a_multipart_form(alice, bucket):
    # What fetch(url, {method: "PATCH", body: new FormData(form)}) sends.
    body = (
        b'--BoUnDaRy\r\nContent-Disposition: form-data; name="default_ttl"\r\n\r\n'
        b"42\r\n--BoUnDaRy--\r\n"
    )
    response = alice.client.generic(
        "PATCH", f"/v1/{bucket}", body, content_type="multipart/form-data; boundary=BoUnDaRy"
    )
    assert response.status_code == 200, response.content
    assert Bucket.objects.get(pk=bucket).default_ttl == 42


def test_update_without_a_field_resets_to_the_spec_default(alice):
    bucket = alice.new_bucket(default_ttl=60)

    response = patch(alice, bucket, "")

    assert response.status_code == 200
    assert Bucket.objects.get(pk=bucket).default_ttl == SPEC_DEFAULT_TTL


@pytest.mark.parametrize("field", ["default_ttl", "ttl"])
@pytest.mark.parametrize("value", BAD_TTLS)
def test_bad_update_is_400_and_changes_nothing(alice, field, value):
    bucket = alice.new_bucket(default_ttl=60)

    response = patch(alice, bucket, f"{field}={value}")

    assert response.status_code == 400
    assert b"default_ttl must be a whole number" in response.content
    assert Bucket.objects.get(pk=bucket).default_ttl == 60


# Deleting a bucket


def test_it_deletes_a_bucket_with_its_keys_and_tokens(alice, bucket):
    alice.set(bucket, "foo", "bar")
    alice.set(bucket, "user/joe", "x")
    alice.token(bucket, "user/")
    other = alice.new_bucket()
    alice.set(other, "foo", "kept")
    alice.token(other, "")

    response = alice.client.delete(f"/v1/{bucket}")

    assert response.status_code == 200
    assert response.content == b"OK"
    assert not Bucket.objects.filter(pk=bucket).exists()
    assert not Item.objects.filter(bucket_id=bucket).exists()
    assert not Token.objects.filter(bucket_id=bucket).exists()
    assert Item.objects.filter(bucket_id=other).count() == 1
    assert Token.objects.filter(bucket_id=other).count() == 1


def test_a_deleted_bucket_is_404_afterwards(alice, bucket):
    alice.set(bucket, "foo", "bar")
    alice.client.get(f"/v1/{bucket}")  # the bucket is now in the in-process cache
    alice.client.delete(f"/v1/{bucket}")

    assert alice.client.get(f"/v1/{bucket}").status_code == 404
    assert alice.client.get(f"/v1/{bucket}/foo").status_code == 404
    assert patch(alice, bucket, "default_ttl=1").status_code == 404
    assert alice.client.delete(f"/v1/{bucket}").status_code == 404
    assert alice.set(bucket, "foo", "again").status_code == 404
    assert not Item.objects.filter(bucket_id=bucket).exists()


def test_a_token_of_a_deleted_bucket_no_longer_works(alice, bucket):
    token = alice.token(bucket, "")
    alice.client.delete(f"/v1/{bucket}")
    assert token_client(token).get(f"/v1/{bucket}/foo").status_code == 403


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
def test_a_token_cannot_update_or_delete_a_bucket(alice, bucket, method):
    client = token_client(alice.token(bucket, ""))

    response = client.generic(method, f"/v1/{bucket}", "default_ttl=1", content_type=FORM)

    assert response.status_code == 403
    assert b"X-Api-Key" in response.content
    assert Bucket.objects.get(pk=bucket).default_ttl == SPEC_DEFAULT_TTL
    assert Token.objects.filter(bucket_id=bucket).count() == 1


# Unknown buckets, credentials, methods


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
@pytest.mark.parametrize("bucket_id", [UNKNOWN_BUCKET, "short", "tokens1"])
def test_unknown_bucket_is_404(alice, method, bucket_id):
    response = alice.client.generic(method, f"/v1/{bucket_id}", "default_ttl=1", content_type=FORM)
    assert response.status_code == 404
    assert response.content == b"bucket not found"


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
def test_another_accounts_bucket_is_404_and_unchanged(alice, bob, bucket, method):
    response = bob.client.generic(method, f"/v1/{bucket}", "default_ttl=1", content_type=FORM)
    assert response.status_code == 404
    assert Bucket.objects.get(pk=bucket).default_ttl == SPEC_DEFAULT_TTL


BUCKET_CALLS = [("POST", "/v1/"), ("GET", "/v1/{b}"), ("PATCH", "/v1/{b}"), ("DELETE", "/v1/{b}")]


@pytest.mark.parametrize("method,path", BUCKET_CALLS)
def test_missing_api_key_is_403(alice, bucket, client, method, path):
    response = client.generic(method, path.format(b=bucket), "default_ttl=1", content_type=FORM)

    assert response.status_code == 403
    assert b"X-Api-Key" in response.content
    assert [b.id for b in owned(alice)] == [bucket]
    assert Bucket.objects.get(pk=bucket).default_ttl == SPEC_DEFAULT_TTL


@pytest.mark.parametrize("method,path", BUCKET_CALLS)
@pytest.mark.parametrize("key", ["wrong", "tdb_" + "A" * 46])
def test_wrong_api_key_is_403(alice, bucket, client, method, path, key):
    response = client.generic(
        method,
        path.format(b=bucket),
        "default_ttl=1",
        content_type=FORM,
        headers={"X-Api-Key": key},
    )

    assert response.status_code == 403
    assert response.content.startswith(b"invalid API key")
    assert [b.id for b in owned(alice)] == [bucket]
    assert Bucket.objects.get(pk=bucket).default_ttl == SPEC_DEFAULT_TTL


@pytest.mark.parametrize(
    "method,path,allowed,refused",
    [
        ("PUT", "/v1/{b}", {"GET", "POST", "PATCH", "DELETE"}, "PUT"),
        ("PUT", "/v1/{b}/", {"GET", "POST", "PATCH", "DELETE"}, "PUT"),
        ("PUT", "/v1/", {"GET", "POST"}, "PUT"),
        ("DELETE", "/v1", {"GET", "POST"}, "DELETE"),
    ],
)
def test_unsupported_method_is_405_with_allow(alice, bucket, method, path, allowed, refused):
    response = alice.client.generic(method, path.format(b=bucket), "x", content_type=FORM)

    assert response.status_code == 405
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert refused.encode() in response.content
    allow = {m.strip() for m in response["Allow"].split(",")}
    assert allowed <= allow
    assert refused not in allow
    assert [b.id for b in owned(alice)] == [bucket]


@pytest.mark.django_db(transaction=True)
def test_deleting_a_bucket_while_keys_are_written_never_fails(alice):
    # The delete locks the bucket first, so a write racing it waits and is refused (404) by the
    # foreign key, instead of breaking the delete with a 500.
    import threading
    import time

    from django.db import connection
    from django.test import Client

    bucket = alice.new_bucket()
    statuses: list[int] = []
    stop = threading.Event()

    def write(n: int) -> None:
        client = Client(headers={"X-Api-Key": alice.key})
        for i in range(200):  # bounded: stops by itself
            if stop.is_set():
                break
            response = client.post(f"/v1/{bucket}/w{n}-{i}", b"v", content_type="text/plain")
            statuses.append(response.status_code)
        connection.close()

    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for writer in writers:
        writer.start()
    deadline = time.monotonic() + 10
    while len(statuses) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    response = alice.client.delete(f"/v1/{bucket}")
    stop.set()
    for writer in writers:
        writer.join()

    assert response.status_code == 200
    assert set(statuses) <= {200, 404}
    assert not Bucket.objects.filter(pk=bucket).exists()
    assert not Item.objects.filter(bucket_id=bucket).exists()


# GET /v1/: the account's buckets (beyond the spec)


def test_list_my_buckets_in_every_format(alice, bob):
    mine = sorted(alice.new_bucket() for _ in range(3))
    bob.new_bucket()
    Bucket.objects.filter(pk=mine[0]).update(key_count=5, stored_bytes=50, default_ttl=60)

    assert alice.client.get("/v1/").content.decode().split("\n") == mine
    items = alice.client.get("/v1/?format=json").json()["items"]
    assert [item["bucket"] for item in items] == mine
    assert items[0] == {"bucket": mine[0], "default_ttl": 60, "keys": 5, "bytes": 50}
    lines = alice.client.get("/v1/?format=ndjson").content.decode().splitlines()
    assert [json.loads(line)["bucket"] for line in lines] == mine


def test_list_buckets_pages_by_cursor(alice):
    mine = sorted(alice.new_bucket() for _ in range(5))
    seen, query = [], "?limit=2&format=json"
    while True:
        response = alice.client.get(f"/v1/{query}")
        page = response.json()
        seen += [item["bucket"] for item in page["items"]]
        if not page["next_cursor"]:
            assert "X-Next-Cursor" not in response
            break
        assert response["X-Next-Cursor"] == page["next_cursor"]
        query = f"?limit=2&format=json&cursor={page['next_cursor']}"
    assert seen == mine


def test_an_empty_account_lists_nothing(alice):
    response = alice.client.get("/v1/")
    assert response.status_code == 200
    assert response.content == b""
    assert alice.client.get("/v1/?format=json").json() == {"items": [], "next_cursor": None}


def test_a_token_cannot_list_buckets(alice, bucket):

    response = token_client(alice.token(bucket, "", "read")).get("/v1/")
    assert response.status_code == 403
    assert b"a token cannot list buckets" in response.content


@pytest.mark.parametrize("query", ["?limit=0", "?limit=1001", "?cursor=%%%"])
def test_bad_list_parameters_are_400(alice, query):
    assert alice.client.get(f"/v1/{query}").status_code == 400
