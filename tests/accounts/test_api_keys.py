"""API keys (accounts.models.ApiKey, accounts.keys): their format, storage, revocation, and how
X-Api-Key is checked by the v1 API."""

import hashlib
import re
import time

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts import keys
from accounts.models import Account, ApiKey
from api import lifecycle

KEY_RE = re.compile(r"tdb_[0-9A-Za-z]{46}")
UNKNOWN_BUCKET = "/v1/AAAAAAAAAAAAAAAAAAAA"  # any authenticated request answers 404 here


def with_checksum(body: str, brand: str = keys.BRAND) -> str:
    """A secret whose checksum is right for `body`, so only the other checks can refuse it."""
    return brand + body + keys._checksum(body)


def flip(secret: str, position: int) -> str:
    replacement = "a" if secret[position] != "a" else "b"
    return secret[:position] + replacement + secret[position + 1 :]


def test_create_key_returns_the_row_and_the_secret(alice):
    api_key, secret = ApiKey.objects.create_key(alice.user, name="laptop")
    assert isinstance(api_key, ApiKey)
    assert api_key.pk is not None
    assert api_key.user == alice.user
    assert api_key.name == "laptop"
    assert KEY_RE.fullmatch(secret), secret


def test_every_key_is_new(alice):
    Account.objects.filter(user=alice.user).update(max_api_keys=30)  # past the free plan's 10
    secrets = {ApiKey.objects.create_key(alice.user)[1] for _ in range(20)}
    assert len(secrets) == 20


def test_the_prefix_stored_is_the_secrets_lookup_part(alice):
    api_key, secret = ApiKey.objects.create_key(alice.user)
    assert api_key.prefix == secret[4:12]
    assert keys.parse(secret) == api_key.prefix


def test_only_the_sha256_of_the_secret_is_stored(alice):
    api_key, secret = ApiKey.objects.create_key(alice.user)
    api_key.refresh_from_db()
    assert api_key.hashed_secret == hashlib.sha256(secret.encode()).hexdigest()


def test_the_secret_appears_in_no_column(alice):
    api_key, secret = ApiKey.objects.create_key(alice.user)
    random_part = secret[12:44]  # what the prefix does not give away
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiKey._meta.db_table} WHERE id = %s", [api_key.pk])
        row = cursor.fetchone()
    stored = " ".join(str(column) for column in row)
    assert api_key.prefix in stored  # the row was read
    assert secret not in stored
    assert random_part not in stored
    assert secret[4:] not in stored


def test_parse_accepts_a_new_secret():
    secret = keys.new_secret()
    assert keys.parse(secret) == secret[4:12]


def test_parse_refuses_a_changed_checksum_character():
    secret = keys.new_secret()
    for position in range(len(secret) - keys.CHECKSUM_LENGTH, len(secret)):
        assert keys.parse(flip(secret, position)) is None


def test_parse_refuses_a_changed_body_character():
    secret = keys.new_secret()
    for position in range(len(keys.BRAND), len(secret) - keys.CHECKSUM_LENGTH):
        assert keys.parse(flip(secret, position)) is None


@pytest.mark.parametrize("brand", ["tdx_", "TDB_", "tdb-", "abc_", "kvd_"])
def test_parse_refuses_a_wrong_brand(brand):
    body = keys.new_secret()[4:-6]
    assert keys.parse(with_checksum(body)) is not None
    assert keys.parse(with_checksum(body, brand=brand)) is None


@pytest.mark.parametrize("body_length", [0, 8, 39, 41, 60])
def test_parse_refuses_a_wrong_length(body_length):
    body = ("ab12CD34" * 10)[:body_length]
    assert keys.parse(with_checksum(body)) is None


def test_parse_refuses_a_truncated_or_extended_key():
    secret = keys.new_secret()
    assert keys.parse(secret[:-1]) is None
    assert keys.parse(secret + "a") is None
    assert keys.parse("") is None
    assert keys.parse(keys.BRAND) is None


@pytest.mark.parametrize("bad", ["-", "_", "+", "/", " ", "é", "=", "\x00"])
def test_parse_refuses_characters_outside_base62(bad):
    body = "ab12CD34" + bad + "x" * 31  # 40 characters, checksum right
    assert len(body) == keys.PREFIX_LENGTH + keys.RANDOM_LENGTH
    assert keys.parse(with_checksum(body)) is None
    assert keys.parse(with_checksum("ab12CD34" + "y" + "x" * 31)) == "ab12CD34"


@pytest.mark.parametrize("position", [4, 8, 11, 12, 25, 43, 44, 47, 49])
def test_a_key_with_one_character_flipped_is_403_without_a_query(
    alice, position, django_assert_num_queries
):
    client = Client(headers={"X-Api-Key": flip(alice.key, position)})
    with django_assert_num_queries(0):
        response = client.post("/v1/")
    assert response.status_code == 403
    assert response.content.startswith(b"invalid API key")


def test_a_well_formed_key_with_the_wrong_secret_is_403(alice):
    # Same prefix, other random part, valid checksum: found by prefix, refused by the hash.
    body = alice.key[4:12] + "Z" * keys.RANDOM_LENGTH
    forged = with_checksum(body)
    assert keys.parse(forged) == alice.api_key.prefix
    response = Client(headers={"X-Api-Key": forged}).post("/v1/")
    assert response.status_code == 403


def test_the_key_works_against_the_api(alice):
    response = alice.client.post("/v1/")
    assert response.status_code == 200


def test_revoke_refuses_the_key_at_once(alice):
    assert alice.client.post("/v1/").status_code == 200  # the key is now cached
    before = timezone.now()
    lifecycle.revoke_api_key(alice.api_key)

    response = alice.client.post("/v1/")
    assert response.status_code == 403
    assert response.content.startswith(b"this API key has been revoked")
    alice.api_key.refresh_from_db()
    assert before <= alice.api_key.revoked_at <= timezone.now()
    assert alice.api_key.is_revoked


def test_revoke_from_another_instance_refuses_the_key_at_once(alice):
    assert alice.client.get(UNKNOWN_BUCKET).status_code == 404  # authenticated, cached
    lifecycle.revoke_api_key(ApiKey.objects.get(pk=alice.api_key.pk))
    assert alice.client.get(UNKNOWN_BUCKET).status_code == 403


def test_revoking_twice_keeps_the_first_time(alice):
    lifecycle.revoke_api_key(alice.api_key)
    first = ApiKey.objects.get(pk=alice.api_key.pk).revoked_at
    lifecycle.revoke_api_key(ApiKey.objects.get(pk=alice.api_key.pk))
    assert ApiKey.objects.get(pk=alice.api_key.pk).revoked_at == first


def test_revoking_one_key_leaves_the_others(alice):
    _, other = ApiKey.objects.create_key(alice.user)
    lifecycle.revoke_api_key(alice.api_key)
    assert alice.client.post("/v1/").status_code == 403
    assert Client(headers={"X-Api-Key": other}).post("/v1/").status_code == 200


def test_the_first_request_sets_last_used_at(alice):
    assert alice.api_key.last_used_at is None
    before = timezone.now()
    assert alice.client.get(UNKNOWN_BUCKET).status_code == 404
    alice.api_key.refresh_from_db()
    assert before <= alice.api_key.last_used_at <= timezone.now()


def test_a_second_request_within_a_minute_does_not_rewrite_last_used_at(
    alice, django_assert_num_queries
):
    bucket = alice.new_bucket()
    alice.api_key.refresh_from_db()
    first = alice.api_key.last_used_at
    assert first is not None

    time.sleep(0.01)  # a rewrite would store a later time
    with django_assert_num_queries(2) as captured:  # bucket lookup + the SELECT of the value
        assert alice.client.get(f"/v1/{bucket}/foo").status_code == 404
    assert not any(q["sql"].upper().startswith("UPDATE") for q in captured.captured_queries)
    alice.api_key.refresh_from_db()
    assert alice.api_key.last_used_at == first


def test_keys_and_tokens_of_a_deactivated_user_are_refused(alice, bucket):
    from api import principals
    from tests.conftest import token_client

    token = alice.token(bucket, "", "read")
    alice.user.is_active = False
    alice.user.save()
    principals.forget_all()  # a worker that has not seen the key yet (others: within 10 s)

    for response in (alice.client.get(f"/v1/{bucket}"), token_client(token).get(f"/v1/{bucket}")):
        assert response.status_code == 403
        assert response.content.startswith(b"this account is suspended")
