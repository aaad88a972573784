"""Accounts on the web (django-allauth): sign up with a verified email, log in and out, change
password and email, reset a forgotten password, two-factor login, delete the account; no
account enumeration; login, signup and reset limited with a page saying when to try again."""

import re
import time

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY, format_hotp_value, hotp_value
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from accounts.models import ApiKey
from api.models import Bucket, Item
from tests.conftest import PASSWORD

User = get_user_model()
NEW_PASSWORD = "another long passphrase 42"


def link_in(message, path_start: str) -> str:
    match = re.search(rf"https?://[^/\s]+({re.escape(path_start)}\S+)", message.body)
    assert match, message.body
    return match.group(1)


def sign_up(client: Client, email: str, password: str = PASSWORD):
    return client.post(
        "/accounts/signup/", {"email": email, "password1": password, "password2": password}
    )


def log_in(client: Client, email: str, password: str = PASSWORD):
    return client.post("/accounts/login/", {"login": email, "password": password})


# Sign up and verify


def test_signup_sends_a_verification_email_and_the_link_logs_in(db, client):
    response = sign_up(client, "carol@example.com")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    user = User.objects.get(email="carol@example.com")
    assert not EmailAddress.objects.get(user=user).verified
    assert len(mail.outbox) == 1
    confirm = link_in(mail.outbox[0], "/accounts/confirm-email/")

    assert client.get(confirm).status_code == 200  # a page with a button: GET confirms nothing
    assert not EmailAddress.objects.get(user=user).verified
    response = client.post(confirm)

    assert response.status_code == 302
    assert EmailAddress.objects.get(user=user).verified
    assert client.get("/keys/").status_code == 200  # logged in by the confirmation


def test_an_unverified_account_cannot_log_in(db, client):
    sign_up(client, "carol@example.com")
    other = Client()
    response = log_in(other, "carol@example.com")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    assert other.get("/keys/").status_code == 302  # still anonymous


@pytest.mark.parametrize(
    "password, complaint",
    [
        ("short", b"too short"),
        ("password123", b"too common"),
        ("12345678901234", b"entirely numeric"),
    ],
)
def test_signup_applies_djangos_password_validators(db, client, password, complaint):
    response = sign_up(client, "carol@example.com", password)
    assert response.status_code == 200
    assert complaint in response.content
    assert not User.objects.filter(email="carol@example.com").exists()


def test_signup_with_a_known_email_answers_as_for_a_new_one(alice, client):
    known = sign_up(client, alice.email)
    unknown = sign_up(Client(), "nobody-yet@example.com")

    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"]
    assert User.objects.filter(email=alice.email).count() == 1
    # The owner of the known address is told by email instead.
    assert {m.to[0] for m in mail.outbox} == {alice.email, "nobody-yet@example.com"}


def test_login_with_an_unknown_email_answers_as_a_wrong_password(alice, client):
    wrong_password = log_in(client, alice.email, "not the password")
    unknown_email = log_in(Client(), "nobody@example.com", "not the password")
    assert wrong_password.status_code == unknown_email.status_code == 200
    assert b"not correct" in wrong_password.content
    assert wrong_password.content.count(b"errorlist") == unknown_email.content.count(b"errorlist")


def test_password_reset_answers_alike_for_known_and_unknown_emails(alice, client):
    known = client.post("/accounts/password/reset/", {"email": alice.email})
    unknown = Client().post("/accounts/password/reset/", {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"]


# Log in, log out, passwords, email


def test_login_rotates_the_session_and_logout_ends_it(alice, client):
    client.get("/accounts/login/")
    before = client.session.session_key
    response = log_in(client, alice.email)
    assert response.status_code == 302
    assert response["Location"] == "/buckets/"
    assert client.session.session_key != before
    assert client.get("/buckets/").status_code == 200

    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/buckets/").status_code == 302


def test_staff_and_people_use_the_same_login_page(staff, client):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/"
    response = client.get(response["Location"])
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    response = client.post(
        "/accounts/login/?next=/admin/", {"login": staff.email, "password": PASSWORD}
    )
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_change_password(alice):
    response = alice.browser.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert log_in(Client(), alice.email, NEW_PASSWORD)["Location"] == "/buckets/"
    assert log_in(Client(), alice.email, PASSWORD).status_code == 200  # the old one: refused


def test_change_password_refuses_a_wrong_old_password(alice):
    response = alice.browser.post(
        "/accounts/password/change/",
        {"oldpassword": "wrong", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 200
    assert b"errorlist" in response.content
    alice.user.refresh_from_db()
    assert alice.user.check_password(PASSWORD)


def test_reset_a_forgotten_password(alice, client):
    client.post("/accounts/password/reset/", {"email": alice.email})
    reset = link_in(mail.outbox[-1], "/accounts/password/reset/key/")
    form_page = client.get(reset, follow=True)
    assert form_page.status_code == 200
    action = form_page.redirect_chain[-1][0] if form_page.redirect_chain else reset
    response = client.post(action, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302
    alice.user.refresh_from_db()
    assert alice.user.check_password(NEW_PASSWORD)


def test_change_email_is_verified_before_it_counts(alice):
    response = alice.browser.post(
        "/accounts/email/", {"action_add": "", "email": "alice.new@example.com"}
    )
    assert response.status_code == 302
    assert mail.outbox[-1].to == ["alice.new@example.com"]
    alice.user.refresh_from_db()
    assert alice.user.email == alice.email  # not yet
    alice.browser.post(link_in(mail.outbox[-1], "/accounts/confirm-email/"))
    alice.user.refresh_from_db()
    assert alice.user.email == "alice.new@example.com"


# Two-factor login


def totp_code(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def test_two_factor_login_with_totp_and_a_recovery_code(alice, client):
    log_in(client, alice.email)
    # Turning two-factor on asks for the password again first.
    response = client.get("/accounts/2fa/totp/activate/")
    assert response["Location"].startswith("/accounts/reauthenticate/")
    client.post(response["Location"], {"password": PASSWORD})
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    assert b"data:image/svg+xml" in page.content  # the QR code, allowed by the CSP's img-src
    secret = client.session[SECRET_SESSION_KEY]
    response = client.post("/accounts/2fa/totp/activate/", {"code": totp_code(secret)})
    assert response.status_code == 302
    codes_page = client.get("/accounts/2fa/recovery-codes/")
    recovery = re.findall(rb"\b[0-9a-f]{8}\b", codes_page.content)
    assert recovery

    browser = Client()
    response = log_in(browser, alice.email)
    assert response["Location"] == "/accounts/2fa/authenticate/"
    assert browser.get("/buckets/").status_code == 302  # not in yet
    assert browser.post("/accounts/2fa/authenticate/", {"code": "000000"}).status_code == 200
    response = browser.post("/accounts/2fa/authenticate/", {"code": recovery[0].decode()})
    assert response.status_code == 302
    assert browser.get("/buckets/").status_code == 200


# Limits on guessing


def test_too_many_logins_get_a_page_saying_when_to_try_again(alice, client):
    for _ in range(10):  # the per-email budget (accounts.ratelimits)
        assert log_in(client, alice.email, "guess").status_code == 200
    response = log_in(client, alice.email, PASSWORD)  # even the right password waits now
    assert response.status_code == 429
    wait = int(response["Retry-After"])
    assert 0 < wait <= 600
    assert b"Try again in" in response.content
    # Another person's login is not held up by alice's attacker.
    assert log_in(Client(REMOTE_ADDR="10.0.0.9"), "bob@example.com", "x").status_code == 200


def test_the_limit_is_per_address_too(db):
    client = Client(REMOTE_ADDR="10.0.0.7")
    for n in range(10):  # the per-address budget of signups
        sign_up(client, f"person{n}@example.com")
    response = sign_up(client, "one-more@example.com")
    assert response.status_code == 429
    assert not User.objects.filter(email="one-more@example.com").exists()


def test_an_unknown_email_is_limited_like_a_known_one(alice):
    known, unknown = Client(REMOTE_ADDR="10.0.0.1"), Client(REMOTE_ADDR="10.0.0.2")
    for _ in range(3):
        known.post("/accounts/password/reset/", {"email": alice.email})
        unknown.post("/accounts/password/reset/", {"email": "nobody@example.com"})
    assert known.post("/accounts/password/reset/", {"email": alice.email}).status_code == 429
    assert (
        unknown.post("/accounts/password/reset/", {"email": "nobody@example.com"}).status_code
        == 429
    )


# Delete the account


def test_delete_account_needs_the_password_and_changes_nothing_without_it(alice, bucket):
    response = alice.browser.post("/account/delete/", {"password": "wrong"})
    assert response.status_code == 400
    assert b"That is not your password" in response.content
    assert User.objects.filter(pk=alice.user.pk).exists()
    assert Bucket.objects.filter(pk=bucket).exists()


def test_delete_account_deletes_everything_in_it_and_stops_its_keys_at_once(alice, bob, bucket):
    alice.set(bucket, "k", "v")
    assert alice.client.get(f"/v1/{bucket}/k").status_code == 200  # the key is now cached
    bob_bucket = bob.new_bucket()

    response = alice.browser.post("/account/delete/", {"password": PASSWORD})

    assert response.status_code == 302
    assert not User.objects.filter(pk=alice.user.pk).exists()
    assert not ApiKey.objects.filter(user_id=alice.user.pk).exists()
    assert not Bucket.objects.filter(pk=bucket).exists()
    assert not Item.objects.filter(bucket_id=bucket).exists()
    assert alice.client.get(f"/v1/{bucket}/k").status_code == 403
    assert alice.browser.get("/buckets/").status_code == 302  # logged out
    assert Bucket.objects.filter(pk=bob_bucket).exists()  # nobody else's data


def test_account_pages_need_a_login(client):
    for path in ("/account/", "/account/delete/", "/keys/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")
