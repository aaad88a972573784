"""GET/POST/PUT/DELETE /v1/<bucket>/<key>: get, set and delete a key."""

from datetime import timedelta

import pytest
from django.utils import timezone

from api import lifecycle
from api.models import Item


def test_it_sets_and_gets_a_value(alice, bucket):
    response = alice.set(bucket, "foo", "bar")
    assert response.status_code == 200
    assert response.content == b"OK"
    assert response["Content-Type"] == "text/plain; charset=utf-8"

    response = alice.client.get(f"/v1/{bucket}/foo")
    assert response.status_code == 200
    assert response.content == b"bar"
    assert response["Content-Type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    "body",
    [b"a=b&c", b"+1", bytes(range(256)), "héllo wörld ✓ 日本".encode(), b"", b"  spaced \n"],
    ids=["form-like", "plus-one", "binary", "utf8", "empty", "whitespace"],
)
@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "application/octet-stream",
        "text/plain",
        "multipart/form-data",
    ],
)
def test_raw_bodies_round_trip_unchanged(alice, bucket, body, content_type):
    response = alice.client.post(f"/v1/{bucket}/raw", body, content_type=content_type)
    assert response.status_code == 200, response.content

    assert alice.client.get(f"/v1/{bucket}/raw").content == body


def test_put_is_an_alias_of_post(alice, bucket):
    response = alice.client.put(f"/v1/{bucket}/foo", b"bar", content_type="text/plain")
    assert response.status_code == 200
    assert alice.client.get(f"/v1/{bucket}/foo").content == b"bar"


def test_a_key_may_hold_slashes_and_unicode(alice, bucket):
    alice.set(bucket, "user/joe/ünï", "x")
    assert alice.client.get(f"/v1/{bucket}/user/joe/ünï").content == b"x"


def test_it_overwrites_a_value(alice, bucket):
    alice.set(bucket, "foo", "one")
    alice.set(bucket, "foo", "two")
    assert alice.client.get(f"/v1/{bucket}/foo").content == b"two"


def test_json_format_of_a_value(alice, bucket):
    alice.set(bucket, "foo", "bar")
    response = alice.client.get(f"/v1/{bucket}/foo?format=json")
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"key": "foo", "value": "bar"}


def test_json_format_of_a_binary_value_is_base64(alice, bucket):
    alice.set(bucket, "bin", b"\xff\x00\xfe")
    response = alice.client.get(f"/v1/{bucket}/bin", headers={"Accept": "application/json"})
    assert response.json() == {"key": "bin", "value": "/wD+", "encoding": "base64"}


def test_unknown_key_is_404(alice, bucket):
    response = alice.client.get(f"/v1/{bucket}/nope")
    assert response.status_code == 404
    assert response.content == b"key not found"


def test_unknown_bucket_is_404(alice):
    response = alice.client.get("/v1/AAAAAAAAAAAAAAAAAAAA/foo")
    assert response.status_code == 404
    assert response.content == b"bucket not found"


@pytest.mark.parametrize("bad_id", ["short", "A" * 21, "AAAAAAAAAAAAAAAAAAA-"])
def test_malformed_bucket_id_is_404_before_any_query(alice, bad_id, django_assert_num_queries):
    alice.client.get("/v1/AAAAAAAAAAAAAAAAAAAA")  # warms the key's auth cache
    with django_assert_num_queries(0):
        response = alice.client.get(f"/v1/{bad_id}/foo")
    assert response.status_code == 404


def test_ttl_sets_expiry(alice, bucket):
    before = timezone.now()
    alice.set(bucket, "foo", "bar", query="?ttl=3600")
    item = Item.objects.get(bucket_id=bucket, key="foo")
    assert (
        before + timedelta(seconds=3599)
        <= item.expires_at
        <= timezone.now() + timedelta(seconds=3600)
    )


def test_ttl_zero_never_expires(alice, bucket):
    alice.set(bucket, "foo", "bar", query="?ttl=0")
    assert Item.objects.get(bucket_id=bucket, key="foo").expires_at is None


def test_default_ttl_of_the_bucket_applies(alice):
    bucket = alice.new_bucket(default_ttl=60)
    alice.set(bucket, "foo", "bar")
    expires_at = Item.objects.get(bucket_id=bucket, key="foo").expires_at
    assert timedelta(seconds=55) < expires_at - timezone.now() <= timedelta(seconds=60)


def test_every_write_refreshes_expiry(alice, bucket):
    alice.set(bucket, "foo", "bar", query="?ttl=60")
    alice.set(bucket, "foo", "bar", query="?ttl=0")
    assert Item.objects.get(bucket_id=bucket, key="foo").expires_at is None


@pytest.mark.parametrize("ttl", ["-1", "abc", "1.5", "999999999999"])
def test_bad_ttl_is_400_and_nothing_is_written(alice, bucket, ttl):
    response = alice.set(bucket, "foo", "bar", query=f"?ttl={ttl}")
    assert response.status_code == 400
    assert b"ttl must be a whole number" in response.content
    assert not Item.objects.filter(bucket_id=bucket).exists()


def test_expired_key_is_never_served(alice, bucket):
    alice.set(bucket, "foo", "bar")
    Item.objects.filter(bucket_id=bucket).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert alice.client.get(f"/v1/{bucket}/foo").status_code == 404
    assert alice.client.get(f"/v1/{bucket}").content == b""


def test_key_of_512_bytes_is_accepted_and_513_refused(alice, bucket):
    assert alice.set(bucket, "k" * 512, "x").status_code == 200
    response = alice.set(bucket, "k" * 513, "x")
    assert response.status_code == 400
    assert b"1 to 512 bytes" in response.content


def test_multibyte_key_length_counts_bytes(alice, bucket):
    assert alice.set(bucket, "é" * 256, "x").status_code == 200  # 512 bytes
    assert alice.set(bucket, "é" * 257, "x").status_code == 400  # 514 bytes


def test_value_of_1_mib_is_accepted(alice, bucket):
    value = b"v" * (1024 * 1024)
    assert alice.set(bucket, "big", value).status_code == 200
    assert alice.client.get(f"/v1/{bucket}/big").content == value


def test_value_over_1_mib_is_413_and_nothing_is_written(alice, bucket):
    response = alice.set(bucket, "big", b"v" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert b"larger than the limit of 1048576 bytes" in response.content
    assert not Item.objects.filter(bucket_id=bucket).exists()


def test_delete_a_key(alice, bucket):
    alice.set(bucket, "foo", "bar")
    response = alice.client.delete(f"/v1/{bucket}/foo")
    assert response.status_code == 200
    assert response.content == b"OK"
    assert alice.client.get(f"/v1/{bucket}/foo").status_code == 404


def test_delete_unknown_key_is_404(alice, bucket):
    assert alice.client.delete(f"/v1/{bucket}/nope").status_code == 404


def test_delete_expired_key_is_404_and_removes_it(alice, bucket):
    alice.set(bucket, "foo", "bar")
    Item.objects.filter(bucket_id=bucket).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert alice.client.delete(f"/v1/{bucket}/foo").status_code == 404
    assert not Item.objects.filter(bucket_id=bucket).exists()


def test_missing_api_key_is_403(bucket, client):
    response = client.get(f"/v1/{bucket}/foo")
    assert response.status_code == 403
    assert b"X-Api-Key" in response.content


@pytest.mark.parametrize("key", ["wrong", "tdb_" + "A" * 46])
def test_wrong_api_key_is_403(bucket, client, key):
    response = client.get(f"/v1/{bucket}/foo", headers={"X-Api-Key": key})
    assert response.status_code == 403
    assert response.content.startswith(b"invalid API key")


def test_revoked_api_key_is_403(alice, bucket):
    lifecycle.revoke_api_key(alice.api_key)
    assert alice.client.get(f"/v1/{bucket}/foo").status_code == 403


def test_method_not_allowed_is_405(alice, bucket):
    response = alice.client.put(f"/v1/{bucket}")
    assert response.status_code == 405
    assert response["Content-Type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("digits", [21, 5000])
def test_huge_numbers_are_400_not_500(alice, bucket, digits):
    number = "1" * digits
    assert alice.client.get(f"/v1/{bucket}?limit={number}").status_code == 400
    assert alice.set(bucket, "k", "v", query=f"?ttl={number}").status_code == 400
    response = alice.client.patch(f"/v1/{bucket}/n", f"+{number}", content_type="text/plain")
    assert response.status_code == 400
    assert b"64-bit" in response.content
    response = alice.client.post(
        "/v1/tokens",
        f"bucket={bucket}&prefix=&permissions=read&ttl={number}",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    assert not Item.objects.filter(bucket_id=bucket).exists()
