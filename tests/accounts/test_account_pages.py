"""The account pages and emails as a person meets them: "Log in" and "Sign up" throughout, emails
that greet by email and speak as ThisDB, a "check your inbox" page with a resend button (and, in
development, where the email went), the account page saying whether two-factor is on, a code step
whose primary button logs in, an email when the password changes, and a two-factor code asked
before the account is deleted (within the code budget of accounts.ratelimits)."""

import re

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from accounts import ratelimits
from api.models import Bucket
from tests.accounts.test_two_factor_limits import (
    TwoFactorPersona,
    send_code,
    totp_code,
    wrong_code,
)
from tests.conftest import PASSWORD, clear_cache

User = get_user_model()
# Sign in/out in any case, and the sign-up spellings other than "Sign up".
OTHER_WORDINGS = re.compile(rb"(?i:sign[ -]?(in|out)\b)|Signup|Sign Up|SIGN UP")


def sign_up(client: Client, email: str):
    return client.post(
        "/accounts/signup/", {"email": email, "password1": PASSWORD, "password2": PASSWORD}
    )


def visible_text(html: bytes) -> bytes:
    """The page's words, without its markup (URLs and names such as account_signup)."""
    return re.sub(rb"<[^>]*>", b" ", html)


@pytest.fixture
def carol(db):
    return TwoFactorPersona("carol")


# "Log in" and "Sign up", never "Sign In", "Sign Up", "Signup" or "Sign Out"


def test_the_entrance_pages_say_log_in_and_sign_up(db, client):
    for path, words in (
        ("/accounts/login/", [b"<title>Log in", b"Log in</button>", b">Sign up</a>"]),
        ("/accounts/signup/", [b"<title>Sign up", b"Sign up</button>", b">Log in</a>"]),
        ("/", [b"Sign up free", b"Log in"]),
    ):
        html = client.get(path).content
        assert not OTHER_WORDINGS.search(visible_text(html)), path
        for word in words:
            assert word in html, (path, word)


def test_the_logout_page_says_log_out(alice):
    html = alice.browser.get("/accounts/logout/").content
    assert not OTHER_WORDINGS.search(visible_text(html))
    assert b"<title>Log out" in html and b"Log out</button>" in html


def test_the_code_step_says_log_in_with_cancel_second_and_mentions_recovery_codes(carol):
    browser = carol.at_code_step()
    html = browser.get("/accounts/2fa/authenticate/").content
    assert not OTHER_WORDINGS.search(visible_text(html))
    assert b"<title>Log in" in html
    assert re.search(rb'<button type="submit">\s*Log in\s*</button>', html)  # the primary one
    assert re.search(rb'<button type="submit" class="secondary">\s*Cancel\s*</button>', html)
    assert html.index(b">Log in</button>") < html.index(b">Cancel</button>")
    assert b"recovery codes works here too" in html


def test_a_login_says_logged_in_by_email(alice, client):
    client.post("/accounts/login/", {"login": alice.email, "password": PASSWORD})
    html = client.get("/buckets/").content
    assert f"Logged in as {alice.email}.".encode() in html


# The verification email and the "check your inbox" page


def test_the_verification_email_greets_by_email_and_speaks_as_thisdb(db, client):
    sign_up(client, "dana.smith@example.com")
    [message] = mail.outbox
    username = User.objects.get(email="dana.smith@example.com").username
    assert message.body.startswith("Hello dana.smith@example.com,\n")
    assert "ThisDB" in message.body
    assert "testserver" not in message.body.split("http://testserver/")[0]  # only in the link
    assert "Hello from" not in message.body
    assert username not in message.body.replace("dana.smith@example.com", "")
    assert message.subject == "[ThisDB] Confirm your email address"


def test_the_confirmation_page_names_no_username(db, client):
    sign_up(client, "dana.smith@example.com")
    link = re.search(r"http://testserver(/accounts/confirm-email/\S+)", mail.outbox[0].body)
    html = client.get(link.group(1)).content
    username = User.objects.get(email="dana.smith@example.com").username
    assert b"dana.smith@example.com" in html
    assert username.encode() not in html.replace(b"dana.smith@example.com", b"")


def test_check_your_inbox_has_a_resend_button(db, client):
    html = sign_up(client, "dana@example.com") and client.get("/accounts/confirm-email/").content
    assert b"Check your inbox" in html
    assert b'action="/account/resend-confirmation/"' in html
    assert b"Send the link again" in html


def test_in_development_it_says_the_email_is_on_the_console(db, client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    assert b'id="console-email"' in client.get("/accounts/confirm-email/").content
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert b'id="console-email"' not in client.get("/accounts/confirm-email/").content


def test_resend_sends_the_link_again_after_the_cooldown(db, client):
    sign_up(client, "dana@example.com")
    response = client.post("/account/resend-confirmation/", follow=True)
    assert b"less than 3 minutes ago" in response.content
    assert len(mail.outbox) == 1  # allauth's cooldown: one email per address per 3 minutes
    clear_cache()  # the cooldown lives in the cache: as if 3 minutes had passed
    response = client.post("/account/resend-confirmation/")
    assert response["Location"] == "/accounts/confirm-email/"
    assert len(mail.outbox) == 2
    assert mail.outbox[1].to == ["dana@example.com"]
    assert "/accounts/confirm-email/" in mail.outbox[1].body


def test_resend_for_a_registered_email_answers_alike(alice, client):
    sign_up(client, alice.email)
    clear_cache()
    response = client.post("/account/resend-confirmation/")
    assert response["Location"] == "/accounts/confirm-email/"
    assert mail.outbox[-1].to == [alice.email]  # told again that they have an account
    assert "already has an account" in mail.outbox[-1].body
    assert User.objects.filter(email=alice.email).count() == 1


def test_resend_without_a_pending_signup_sends_to_the_login_page(db, client):
    response = client.post("/account/resend-confirmation/")
    assert response["Location"] == "/accounts/login/"
    assert mail.outbox == []


def test_resend_at_the_code_step_sends_nothing(carol):
    browser = carol.at_code_step()
    mail.outbox.clear()
    response = browser.post("/account/resend-confirmation/")
    assert response["Location"] == "/accounts/login/"
    assert mail.outbox == []


# The account page


def test_the_account_page_says_two_factor_is_off_with_a_link_to_set_it_up(alice):
    html = alice.browser.get("/account/").content
    assert re.search(rb"Two-factor authentication:\s*<span[^>]*>off</span>", html)
    assert b'href="/accounts/2fa/totp/activate/">Set it up' in html


def test_the_account_page_says_two_factor_is_on_with_a_link_to_manage_it(carol):
    browser = Client()
    browser.force_login(carol.user)
    html = browser.get("/account/").content
    assert re.search(rb"Two-factor authentication:\s*<span[^>]*>on</span>", html)
    assert b'href="/accounts/2fa/">Manage it' in html


# Security emails


def test_changing_the_password_sends_an_email(alice):
    new = "another long passphrase 42"
    alice.browser.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": new, "password2": new},
    )
    [message] = [m for m in mail.outbox if "Password Changed" in m.subject]
    assert message.to == [alice.email]
    assert "Your password has been changed" in message.body
    assert message.body.startswith(f"Hello {alice.email},")


# Deleting an account with two-factor on


def delete(browser: Client, **fields):
    return browser.post("/account/delete/", {"password": PASSWORD, **fields})


@pytest.fixture
def carols_browser(carol):
    browser = Client()
    browser.force_login(carol.user)
    return browser


def test_deleting_asks_for_a_code_when_two_factor_is_on(carol, carols_browser):
    assert b'name="code"' in carols_browser.get("/account/delete/").content
    response = delete(carols_browser)
    assert response.status_code == 400
    assert b"This field is required" in response.content
    response = delete(carols_browser, code=wrong_code(carol.secret))
    assert response.status_code == 400
    assert b"That code is not right" in response.content
    assert User.objects.filter(pk=carol.user.pk).exists()

    response = delete(carols_browser, code=totp_code(carol.secret))
    assert response.status_code == 302
    assert not User.objects.filter(pk=carol.user.pk).exists()


def test_a_recovery_code_deletes_too(carol, carols_browser):
    assert delete(carols_browser, code=carol.recovery_codes[0]).status_code == 302
    assert not User.objects.filter(pk=carol.user.pk).exists()


def test_deleting_counts_codes_in_the_same_budget(carol, carols_browser):
    bucket = Bucket.objects.create(owner=carol.user)
    login = carol.at_code_step()
    for _ in range(ratelimits.CODES_PER_USER.limit - 1):
        send_code(login, wrong_code(carol.secret))
    assert delete(carols_browser, code=wrong_code(carol.secret)).status_code == 400
    response = delete(carols_browser, code=totp_code(carol.secret))
    assert response.status_code == 429
    assert b"Try again in" in response.content
    assert Bucket.objects.filter(pk=bucket.pk).exists()


def test_a_wrong_password_spends_no_code(carol, carols_browser):
    code = carol.recovery_codes[0]
    response = carols_browser.post("/account/delete/", {"password": "wrong", "code": code})
    assert response.status_code == 400
    assert delete(carols_browser, code=code).status_code == 302  # the code was not used up


def test_without_two_factor_no_code_is_asked(alice):
    assert b'name="code"' not in alice.browser.get("/account/delete/").content
    assert delete(alice.browser).status_code == 302
    assert not EmailAddress.objects.filter(email=alice.email).exists()
