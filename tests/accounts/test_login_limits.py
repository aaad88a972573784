"""The login limits (accounts.ratelimits, on the Redis cache): failures are counted per email and
per address, staff and everyone else are answered alike, and an attacker cannot lock out the
person who owns an account: the right password from an address that has not been failing logs in
while the attacker's own address waits."""

from django.test import Client

from accounts import ratelimits
from tests.accounts.test_two_factor_limits import TwoFactorPersona, send_code, totp_code
from tests.conftest import PASSWORD

FAILURES = ratelimits.LOGIN_FAILURES_PER_EMAIL.limit  # 10


def log_in(address: str, email: str, password: str = PASSWORD, client: Client | None = None):
    client = client or Client(REMOTE_ADDR=address)
    return client.post("/accounts/login/", {"login": email, "password": password})


def test_staff_and_everyone_else_are_answered_alike(staff, alice):
    for email, address in ((staff.email, "10.5.1.1"), (alice.email, "10.5.1.2")):
        answers = [log_in(address, email, "guess").status_code for _ in range(FAILURES)]
        assert answers == [200] * FAILURES, email
        response = log_in(address, email, "guess")
        assert response.status_code == 429, email
        assert 0 < int(response["Retry-After"]) <= 600


def test_successful_logins_do_not_count(alice):
    for _ in range(FAILURES + 5):
        response = log_in("10.5.2.1", alice.email)
        assert response.status_code == 302
        assert response["Location"] == "/buckets/"


def test_an_attacker_cannot_lock_out_the_owner(alice):
    attacker = "10.5.3.1"
    for _ in range(FAILURES):
        assert log_in(attacker, alice.email, "guess").status_code == 200
    # The attacker's address now waits, even with the right password.
    assert log_in(attacker, alice.email).status_code == 429
    # alice, from her own address, logs in.
    browser = Client(REMOTE_ADDR="10.5.3.2")
    response = log_in("", alice.email, client=browser)
    assert response.status_code == 302
    assert browser.get("/buckets/").status_code == 200


def test_nor_the_owner_with_two_factor_on(db):
    carol = TwoFactorPersona("carol")
    for _ in range(FAILURES):
        log_in("10.5.4.1", carol.email, "guess")
    browser = Client(REMOTE_ADDR="10.5.4.2")
    assert log_in("", carol.email, client=browser)["Location"] == "/accounts/2fa/authenticate/"
    assert send_code(browser, totp_code(carol.secret)).status_code == 302
    assert browser.get("/buckets/").status_code == 200


def test_each_address_gets_only_a_few_guesses_at_an_email_under_attack(alice):
    for _ in range(FAILURES):
        log_in("10.5.5.1", alice.email, "guess")
    another = "10.5.5.2"
    for _ in range(ratelimits.LOGIN_FAILURES_PER_ADDRESS.limit):
        assert log_in(another, alice.email, "guess").status_code == 200
    assert log_in(another, alice.email, "guess").status_code == 429
    assert log_in(another, alice.email).status_code == 429


def test_an_unknown_email_is_limited_like_a_known_one(alice):
    for email, address in ((alice.email, "10.5.6.1"), ("nobody@example.com", "10.5.6.2")):
        for _ in range(FAILURES):
            assert log_in(address, email, "guess").status_code == 200
        assert log_in(address, email, "guess").status_code == 429


def test_the_per_address_limit_stays(alice, bob):
    address = "10.5.7.1"
    budget = int(ratelimits.LIMITS["login"]["ip"].split("/")[0])  # 30 per 10 minutes
    for n in range(budget):
        person = (alice, bob)[n % 2]
        assert log_in(address, person.email).status_code == 302
    assert log_in(address, alice.email).status_code == 429
    assert log_in("10.5.7.2", alice.email).status_code == 302
