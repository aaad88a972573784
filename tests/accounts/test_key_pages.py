"""The API keys page: create (name, expiry, read-only), the key shown once, the list, revoke with
a confirmation; and what expiring and read-only keys may do on the API."""

import re
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey
from api import lifecycle
from api.models import Token
from tests.conftest import token_client

KEY_RE = re.compile(rb"tdb_[0-9A-Za-z]{46}")


def create(person, **fields):
    """POST the form; return the page it redirects to (where the new key is shown)."""
    data = {"name": "laptop", "expires_in_days": "90", **fields}
    response = person.browser.post("/keys/", data)
    assert response.status_code == 303, response.content
    assert response["Location"] == "/keys/"
    return person.browser.get("/keys/")


@pytest.mark.parametrize("days", [30, 90, 365, 0])
def test_create_a_key_with_each_expiry(alice, days):
    before = timezone.now()
    response = create(alice, expires_in_days=str(days))

    assert response.status_code == 200
    api_key = ApiKey.objects.filter(user=alice.user, name="laptop").get()
    if days:
        assert before + timedelta(days=days) <= api_key.expires_at
        assert api_key.expires_at <= timezone.now() + timedelta(days=days)
    else:
        assert api_key.expires_at is None
    assert response["Cache-Control"].startswith("max-age=0")
    assert "no-store" in response["Cache-Control"]


def test_a_reload_makes_no_second_key_and_shows_no_secret(alice):
    posted = alice.browser.post("/keys/", {"name": "laptop", "expires_in_days": "90"})
    assert posted.status_code == 303  # a reload of what follows repeats the GET, not the POST
    assert not KEY_RE.search(posted.content)
    shown = alice.browser.get("/keys/")
    assert len(set(KEY_RE.findall(shown.content))) == 1
    reloaded = alice.browser.get("/keys/")
    assert reloaded.status_code == 200
    assert not KEY_RE.search(reloaded.content)
    assert ApiKey.objects.filter(user=alice.user, name="laptop").count() == 1


def test_the_secret_waits_in_the_session_never_in_a_cookie(alice):
    posted = alice.browser.post("/keys/", {"name": "laptop", "expires_in_days": "90"})
    assert all(not KEY_RE.search(c.value.encode()) for c in posted.cookies.values())
    assert all(not KEY_RE.search(c.value.encode()) for c in alice.browser.cookies.values())
    session = Session.objects.get(session_key=alice.browser.session.session_key)
    assert KEY_RE.search(str(session.get_decoded()).encode())  # on the server, until shown
    alice.browser.get("/keys/")
    session = Session.objects.get(session_key=alice.browser.session.session_key)
    assert not KEY_RE.search(str(session.get_decoded()).encode())  # and gone once shown


def test_another_accounts_new_key_is_never_shown(alice, bob):
    alice.browser.post("/keys/", {"name": "laptop", "expires_in_days": "90"})
    assert not KEY_RE.search(bob.browser.get("/keys/").content)


def test_the_key_is_shown_once_and_works(alice):
    response = create(alice)
    secrets = KEY_RE.findall(response.content)
    assert len(set(secrets)) == 1
    secret = secrets[0].decode()
    assert b"Copy" in response.content

    assert Client(headers={"X-Api-Key": secret}).post("/v1/").status_code == 200
    listing = alice.browser.get("/keys/")
    assert not KEY_RE.search(listing.content)  # never again
    api_key = ApiKey.objects.get(user=alice.user, name="laptop")
    assert api_key.display_prefix.encode() in listing.content


def test_the_list_shows_name_prefix_dates_and_status(alice):
    create(alice, name="old one")
    old = ApiKey.objects.get(name="old one")
    lifecycle.revoke_api_key(old)
    content = alice.browser.get("/keys/").content
    assert b"old one" in content
    assert old.display_prefix.encode() in content
    assert b"revoked" in content and b"active" in content
    assert b"never" in content  # the persona's key never expires


@pytest.mark.parametrize(
    "fields, complaint",
    [
        ({"name": ""}, b"This field is required"),
        ({"expires_in_days": "7"}, b"Select a valid choice"),
        ({"name": "x" * 101}, b"at most 100 characters"),
    ],
)
def test_invalid_input_is_a_form_error_and_creates_nothing(alice, fields, complaint):
    data = {"name": "laptop", "expires_in_days": "90", **fields}
    response = alice.browser.post("/keys/", data)
    assert response.status_code == 400
    assert complaint in response.content
    assert not KEY_RE.search(response.content)
    assert ApiKey.objects.filter(user=alice.user).count() == 1  # the persona's own


def test_revoke_asks_first_then_stops_the_key_at_once(alice, bucket):
    token = alice.token(bucket, "", "read")
    assert alice.client.get(f"/v1/{bucket}").status_code == 200  # cached now
    url = f"/keys/{alice.api_key.pk}/revoke/"

    page = alice.browser.get(url)
    assert page.status_code == 200
    assert b"Revoke" in page.content and alice.api_key.display_prefix.encode() in page.content
    assert alice.client.get(f"/v1/{bucket}").status_code == 200  # asking changes nothing

    response = alice.browser.post(url)
    assert response.status_code == 302
    response = alice.client.get(f"/v1/{bucket}")
    assert response.status_code == 403
    assert response.content.startswith(b"this API key has been revoked")
    assert token_client(token).get(f"/v1/{bucket}").status_code == 403


def test_another_accounts_key_is_a_404(alice, bob):
    url = f"/keys/{bob.api_key.pk}/revoke/"
    assert alice.browser.get(url).status_code == 404
    assert alice.browser.post(url).status_code == 404
    assert bob.client.post("/v1/").status_code == 200


def test_revoke_needs_a_csrf_token(alice):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice.user)
    assert browser.post(f"/keys/{alice.api_key.pk}/revoke/").status_code == 403
    assert alice.client.post("/v1/").status_code == 200


# Expiry on the API


def test_an_expired_key_is_refused_with_a_message_even_from_the_cache(alice):
    assert alice.client.post("/v1/").status_code == 200  # cached
    ApiKey.objects.filter(pk=alice.api_key.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    from api import principals

    principals.forget_all()
    response = alice.client.post("/v1/")
    assert response.status_code == 403
    assert response.content.startswith(b"this API key expired on")


def test_tokens_of_an_expired_key_are_refused(alice, bucket):
    token = alice.token(bucket, "", "read")
    ApiKey.objects.filter(pk=alice.api_key.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    from api import principals

    principals.forget_all()
    assert token_client(token).get(f"/v1/{bucket}").status_code == 403


# Read-only keys


@pytest.fixture
def reader(alice):
    """A read-only key of alice's, as an API client."""
    _, secret = ApiKey.objects.create_key(alice.user, name="reader", read_only=True)
    return Client(headers={"X-Api-Key": secret})


def test_a_read_only_key_reads(alice, bucket, reader):
    alice.set(bucket, "k", "v")
    assert reader.get(f"/v1/{bucket}/k").content == b"v"
    assert reader.get(f"/v1/{bucket}").content == b"k"


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("post", "/v1/{bucket}/k", "new"),
        ("put", "/v1/{bucket}/k", "new"),
        ("patch", "/v1/{bucket}/n", "+1"),
        ("delete", "/v1/{bucket}/k", ""),
        ("post", "/v1/", ""),
        ("patch", "/v1/{bucket}", "default_ttl=5"),
        ("delete", "/v1/{bucket}", ""),
        ("post", "/v1/tokens", "bucket={bucket}&prefix=&permissions=read&ttl=60"),
    ],
)
def test_a_read_only_key_cannot_write(alice, bucket, reader, method, path, body):
    alice.set(bucket, "k", "v")
    response = getattr(reader, method)(
        path.format(bucket=bucket),
        body.format(bucket=bucket),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 403
    assert b"read-only" in response.content
    assert alice.client.get(f"/v1/{bucket}/k").content == b"v"
    assert not Token.objects.exists()
    assert alice.client.get(f"/v1/{bucket}").status_code == 200


def test_read_only_is_chosen_on_the_page(alice, bucket):
    secret = KEY_RE.search(create(alice, read_only="on").content).group().decode()
    client = Client(headers={"X-Api-Key": secret})
    assert client.get(f"/v1/{bucket}").status_code == 200
    assert client.post(f"/v1/{bucket}/k", "v", content_type="text/plain").status_code == 403
