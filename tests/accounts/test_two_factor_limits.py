"""Two-factor codes cannot be guessed: wrong TOTP and recovery codes are counted per user and per
client address (accounts.ratelimits, on the Redis cache), and past either budget every code, the
right one too, gets the 429 page until the window ends; the lock-out is logged without the code."""

import logging
import threading
import time

import pytest
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.core.cache import caches
from django.db import connection
from django.test import Client

from accounts import ratelimits
from tests.conftest import PASSWORD, RUN_PREFIX, Persona


def totp_code(secret: str, offset: int = 0) -> str:
    value = hotp_value(secret, int(time.time()) // 30)
    return format_hotp_value((value + offset) % 1_000_000)


def wrong_code(secret: str) -> str:
    return totp_code(secret, offset=1)


class TwoFactorPersona(Persona):
    """A persona with TOTP and recovery codes on."""

    def __init__(self, username: str):
        super().__init__(username)
        self.secret = generate_totp_secret()
        TOTP.activate(self.user, self.secret)
        self.recovery_codes = RecoveryCodes.activate(self.user).generate_codes()

    def at_code_step(self, address: str = "127.0.0.1") -> Client:
        """A browser past the password, asked for the code."""
        browser = Client(REMOTE_ADDR=address)
        response = browser.post("/accounts/login/", {"login": self.email, "password": PASSWORD})
        assert response["Location"] == "/accounts/2fa/authenticate/"
        return browser


def send_code(browser: Client, code: str):
    return browser.post("/accounts/2fa/authenticate/", {"code": code})


@pytest.fixture
def carol(db):
    return TwoFactorPersona("carol")


def test_five_wrong_codes_then_even_the_right_one_waits(carol, caplog):
    browser = carol.at_code_step()
    for _ in range(ratelimits.CODES_PER_USER.limit):
        response = send_code(browser, wrong_code(carol.secret))
        assert response.status_code == 200
        assert b"Incorrect code" in response.content

    with caplog.at_level(logging.WARNING, logger="accounts.ratelimits"):
        locked = send_code(browser, wrong_code(carol.secret))
    assert locked.status_code == 429
    assert 0 < int(locked["Retry-After"]) <= ratelimits.CODES_PER_USER.period
    assert b"Try again in" in locked.content

    right = send_code(browser, totp_code(carol.secret))
    assert right.status_code == 429
    assert send_code(browser, carol.recovery_codes[0]).status_code == 429
    assert browser.get("/buckets/").status_code == 302  # still not logged in
    # The recovery code was never checked, so it was not used up.
    assert carol.recovery_codes[0] in RecoveryCodes.activate(carol.user).get_unused_codes()

    [line] = [r.getMessage() for r in caplog.records if "two-factor codes locked" in r.getMessage()]
    assert f"user {carol.user.pk}" in line and "address 127.0.0.1" in line
    assert wrong_code(carol.secret) not in line and totp_code(carol.secret) not in line


def test_wrong_recovery_codes_count_the_same(carol):
    browser = carol.at_code_step()
    for n in range(ratelimits.CODES_PER_USER.limit):
        assert send_code(browser, f"{n:08x}").status_code == 200
    assert send_code(browser, carol.recovery_codes[0]).status_code == 429


def test_the_limit_is_per_user_whatever_the_address(carol):
    for n in range(ratelimits.CODES_PER_USER.limit):
        browser = carol.at_code_step(address=f"10.2.0.{n}")
        assert send_code(browser, wrong_code(carol.secret)).status_code == 200
    browser = carol.at_code_step(address="10.2.1.1")
    assert send_code(browser, totp_code(carol.secret)).status_code == 429


def test_the_limit_is_per_address_across_users(db):
    people = [TwoFactorPersona(f"p{n}") for n in range(5)]
    address = "10.3.0.1"
    for person in people[:4]:
        browser = person.at_code_step(address)
        for _ in range(ratelimits.CODES_PER_ADDRESS.limit // 4):
            assert send_code(browser, wrong_code(person.secret)).status_code == 200
    last = people[4]
    assert send_code(last.at_code_step(address), totp_code(last.secret)).status_code == 429
    # The same person from elsewhere is not held up by that address.
    response = send_code(last.at_code_step("10.3.0.2"), totp_code(last.secret))
    assert response.status_code == 302


def test_right_codes_do_not_count(carol):
    for _ in range(ratelimits.CODES_PER_USER.limit + 2):
        browser = carol.at_code_step()
        code = carol.recovery_codes.pop()  # a TOTP code works once per 30 s; these once each
        assert send_code(browser, code).status_code == 302
        assert browser.get("/buckets/").status_code == 200


def test_the_right_code_works_again_once_the_window_ends(carol, monkeypatch):
    budget = ratelimits.Budget("codes-user-short", 2, 4)  # 2 wrong codes per user per 4 s
    monkeypatch.setattr(ratelimits, "CODES_PER_USER", budget)
    browser = carol.at_code_step()
    for _ in range(2):
        send_code(browser, wrong_code(carol.secret))
    locked = send_code(browser, totp_code(carol.secret))
    assert locked.status_code == 429
    time.sleep(int(locked["Retry-After"]) + 0.2)
    response = send_code(browser, totp_code(carol.secret))
    assert response.status_code == 302
    assert browser.get("/buckets/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_concurrent_guesses_are_counted_exactly():
    """20 wrong codes at once: exactly the budget of them is checked, the others are 429."""
    carol = TwoFactorPersona("carol")
    browsers = [carol.at_code_step(address=f"10.4.0.{n}") for n in range(20)]
    statuses: list[int] = []
    start = threading.Barrier(len(browsers))

    def guess(browser):
        # A thread has its own cache connection: under this run's prefix too (tests/conftest.py).
        caches["default"].key_prefix = RUN_PREFIX
        start.wait()
        statuses.append(send_code(browser, wrong_code(carol.secret)).status_code)
        connection.close()

    threads = [threading.Thread(target=guess, args=(b,)) for b in browsers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(200) == ratelimits.CODES_PER_USER.limit
    assert statuses.count(429) == len(browsers) - ratelimits.CODES_PER_USER.limit


# Re-authentication (asked before changing two-factor settings) counts codes the same way.


def test_reauthentication_codes_are_limited_too(carol):
    browser = Client()
    browser.force_login(carol.user)
    for _ in range(ratelimits.CODES_PER_USER.limit):
        response = browser.post("/accounts/2fa/reauthenticate/", {"code": wrong_code(carol.secret)})
        assert response.status_code == 200
    response = browser.post("/accounts/2fa/reauthenticate/", {"code": totp_code(carol.secret)})
    assert response.status_code == 429
    # Deactivating two-factor still asks to re-authenticate: nothing was let through.
    response = browser.get("/accounts/2fa/totp/deactivate/")
    assert response.status_code == 302
    assert "reauthenticate" in response["Location"]


def test_login_and_reauthentication_share_the_budget(carol):
    browser = carol.at_code_step()
    for _ in range(ratelimits.CODES_PER_USER.limit):
        send_code(browser, wrong_code(carol.secret))
    other = Client()
    other.force_login(carol.user)
    response = other.post("/accounts/2fa/reauthenticate/", {"code": totp_code(carol.secret)})
    assert response.status_code == 429
