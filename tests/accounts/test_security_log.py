"""The security log: each kind of event is written by the real path that causes it (the pages,
allauth's flows, the staff console), with the client's address and browser, in the transaction of
its change; the account page shows an account its own events only, and never a secret."""

import re

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY
from django.core import mail
from django.db import DatabaseError, connection
from django.test import Client
from django.utils import timezone

from accounts import expiry, security
from accounts.models import ApiKey
from accounts.security import SecurityEvent
from api import lifecycle
from api.models import Token
from tests.accounts.test_two_factor_limits import TwoFactorPersona, send_code, totp_code
from tests.accounts.test_web_accounts import NEW_PASSWORD, link_in, log_in
from tests.conftest import PASSWORD, Persona

Kind = SecurityEvent.Kind
ADDRESS = "203.0.113.7"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"


def browser_from(address: str = ADDRESS, user_agent: str = BROWSER) -> Client:
    return Client(REMOTE_ADDR=address, HTTP_USER_AGENT=user_agent)


def logged_in(person: Persona) -> Client:
    browser = browser_from()
    browser.force_login(person.user)
    return browser


def events(person: Persona, kind: str | None = None) -> list[SecurityEvent]:
    found = security.for_user(person.user)
    return list(found.filter(kind=kind) if kind else found)


def only(person: Persona, kind: str) -> SecurityEvent:
    [event] = events(person, kind)
    return event


def latest(person: Persona, kind: str) -> SecurityEvent:
    return events(person, kind)[0]


def assert_from_the_browser(event: SecurityEvent) -> None:
    assert event.address == ADDRESS
    assert event.user_agent == BROWSER


# API keys and tokens


def test_a_key_created_on_the_keys_page(alice):
    browser = logged_in(alice)
    response = browser.post("/keys/", {"name": "laptop", "expires_in_days": "30"})
    assert response.status_code == 303
    secret = re.search(r"tdb_\w+", browser.get("/keys/").content.decode()).group()

    event = latest(alice, Kind.KEY_CREATED)  # the persona's own key was the first
    api_key = ApiKey.objects.get(name="laptop")
    assert event.detail == {"key": api_key.display_prefix, "name": "laptop"}
    assert_from_the_browser(event)
    assert event.description == f"API key {api_key.display_prefix}… (laptop) created"
    assert secret not in str(event.detail) and secret != api_key.display_prefix


def test_a_key_revoked_on_its_page_is_logged_once(alice):
    browser = logged_in(alice)
    assert browser.post(f"/keys/{alice.api_key.pk}/revoke/").status_code == 302
    assert browser.post(f"/keys/{alice.api_key.pk}/revoke/").status_code == 302  # again

    event = only(alice, Kind.KEY_REVOKED)
    assert event.detail == {"key": alice.api_key.display_prefix, "name": "test"}
    assert_from_the_browser(event)


def test_a_token_made_in_the_browser(alice, bucket):
    browser = logged_in(alice)
    response = browser.post(
        f"/buckets/{bucket}/tokens/",
        {"prefix": "user:1:", "read": "on", "ttl": "600", "api_key": alice.api_key.pk},
    )
    assert response.status_code == 303
    token = browser.get(response["Location"]).content.decode()

    event = only(alice, Kind.TOKEN_CREATED)
    row = Token.objects.get()
    assert event.detail == {
        "token": row.pk,
        "bucket": bucket,
        "scope": "user:1:",
        "key": alice.api_key.display_prefix,
    }
    assert_from_the_browser(event)
    secret = re.search(r'<code id="token">([^<]+)</code>', token)[1]
    assert secret not in str(event.detail)
    assert event.description.startswith(f"Token #{row.pk} created in the browser for bucket")


def test_a_token_made_with_the_api_is_not_a_browser_event(alice, bucket):
    alice.token(bucket, "")
    assert events(alice, Kind.TOKEN_CREATED) == []


# Logins


def test_a_login_with_its_address_and_browser(alice):
    browser = browser_from()
    assert log_in(browser, alice.email)["Location"] == "/buckets/"
    event = only(alice, Kind.LOGIN)
    assert_from_the_browser(event)
    assert event.description == "Logged in"


def test_the_address_behind_the_proxy_is_the_clients(alice, settings):
    # ForwardedForMiddleware is installed when THISDB_PROXY_COUNT is set at startup: the test
    # installs it as settings.py does.
    settings.THISDB_PROXY_COUNT = 1
    settings.MIDDLEWARE = ["thisdb_site.middleware.ForwardedForMiddleware", *settings.MIDDLEWARE]
    browser = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.4, 2001:db8::9")
    log_in(browser, alice.email)
    assert only(alice, Kind.LOGIN).address == "2001:db8::9"


def test_a_wrong_password_is_logged_against_the_account(alice):
    response = log_in(browser_from(), alice.email, "not the password")
    assert response.status_code == 200
    event = only(alice, Kind.LOGIN_FAILED)
    assert event.detail == {"step": "password"}
    assert_from_the_browser(event)
    assert event.description == "Failed login: wrong password"
    # Under another spelling of the address, too.
    log_in(browser_from(), alice.email.upper(), "still not it")
    assert len(events(alice, Kind.LOGIN_FAILED)) == 2


def test_an_unknown_email_is_logged_nowhere_and_answered_alike(alice):
    before = SecurityEvent.objects.count()
    unknown = log_in(browser_from(), "nobody@example.com", "not the password")
    assert SecurityEvent.objects.count() == before
    known = log_in(browser_from(), alice.email, "not the password")
    assert unknown.status_code == known.status_code == 200
    assert unknown.content.count(b"errorlist") == known.content.count(b"errorlist")


def test_a_suspended_accounts_right_password_is_no_login(alice):
    lifecycle.suspend_account(alice.user)
    response = log_in(browser_from(), alice.email)
    assert response["Location"] == "/accounts/inactive/"
    assert events(alice, Kind.LOGIN) == []


# Two-factor


@pytest.fixture
def carol(db):
    return TwoFactorPersona("carol")


def at_two_factor_setup(person: Persona) -> Client:
    """A browser of `person`'s on the page that turns two-factor on (its secret in the
    session)."""
    browser = browser_from()
    log_in(browser, person.email)
    browser.post("/accounts/reauthenticate/", {"password": PASSWORD})
    assert browser.get("/accounts/2fa/totp/activate/").status_code == 200
    return browser


def test_two_factor_turned_on_and_off_on_the_pages(alice):
    browser = at_two_factor_setup(alice)
    secret = browser.session[SECRET_SESSION_KEY]
    response = browser.post("/accounts/2fa/totp/activate/", {"code": totp_code(secret)})
    assert response.status_code == 302
    on = only(alice, Kind.TWO_FACTOR_ON)
    assert_from_the_browser(on)
    # Setting it up makes recovery codes: not a second "on".
    assert len(events(alice, Kind.TWO_FACTOR_ON)) == 1

    assert browser.post("/accounts/2fa/totp/deactivate/").status_code == 302
    assert not Authenticator.objects.filter(user=alice.user, type="totp").exists()
    off = only(alice, Kind.TWO_FACTOR_OFF)
    assert_from_the_browser(off)
    assert off.description == "Two-factor turned off"


def test_a_recovery_code_used_at_login(carol):
    browser = carol.at_code_step(ADDRESS)
    response = send_code(browser, carol.recovery_codes[0])
    assert response.status_code == 302
    used = only(carol, Kind.RECOVERY_CODE_USED)
    assert used.address == ADDRESS
    assert only(carol, Kind.LOGIN).address == ADDRESS
    assert carol.recovery_codes[0] not in str(used.detail)


def test_a_totp_code_at_login_is_no_recovery_code(carol):
    send_code(carol.at_code_step(), totp_code(carol.secret))
    assert events(carol, Kind.RECOVERY_CODE_USED) == []
    assert len(events(carol, Kind.LOGIN)) == 1


def test_a_wrong_code_at_login_is_a_failed_login(carol):
    browser = carol.at_code_step(ADDRESS)
    wrong = totp_code(carol.secret, offset=1)
    assert send_code(browser, wrong).status_code == 200
    event = only(carol, Kind.LOGIN_FAILED)
    assert event.detail == {"step": "two-factor code"}
    assert event.address == ADDRESS
    assert event.description == "Failed login: wrong two-factor code"
    assert events(carol, Kind.LOGIN) == []


def test_a_wrong_code_asked_again_says_so(carol):
    browser = logged_in(carol)
    browser.post("/accounts/2fa/reauthenticate/", {"code": totp_code(carol.secret, offset=1)})
    event = only(carol, Kind.LOGIN_FAILED)
    assert event.detail == {"step": "two-factor code", "reauthentication": True}
    assert "asked again" in event.description


# Password and email


def test_a_password_changed(alice):
    browser = logged_in(alice)
    response = browser.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    event = only(alice, Kind.PASSWORD_CHANGED)
    assert event.detail == {"how": "changed"}
    assert_from_the_browser(event)


def test_a_wrong_old_password_changes_nothing_and_logs_nothing(alice):
    browser = logged_in(alice)
    browser.post(
        "/accounts/password/change/",
        {"oldpassword": "wrong", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert events(alice, Kind.PASSWORD_CHANGED) == []


def test_a_password_reset_by_email(alice):
    browser = browser_from()
    browser.post("/accounts/password/reset/", {"email": alice.email})
    reset = link_in(mail.outbox[-1], "/accounts/password/reset/key/")
    form_page = browser.get(reset, follow=True)
    action = form_page.redirect_chain[-1][0] if form_page.redirect_chain else reset
    browser.post(action, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    event = only(alice, Kind.PASSWORD_CHANGED)
    assert event.detail == {"how": "reset"}
    assert event.description == "Password reset with a link sent by email"
    assert_from_the_browser(event)


def test_an_email_changed_once_the_new_one_is_confirmed(alice):
    browser = logged_in(alice)
    browser.post("/accounts/email/", {"action_add": "", "email": "alice.new@example.com"})
    assert events(alice, Kind.EMAIL_CHANGED) == []  # not yet
    browser.post(link_in(mail.outbox[-1], "/accounts/confirm-email/"))
    event = only(alice, Kind.EMAIL_CHANGED)
    assert event.detail == {"from_email": alice.email, "to_email": "alice.new@example.com"}
    assert_from_the_browser(event)


def test_the_first_email_confirmed_at_signup_is_no_change(db):
    browser = browser_from()
    browser.post(
        "/accounts/signup/",
        {"email": "dan@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    browser.post(link_in(mail.outbox[-1], "/accounts/confirm-email/"))
    kinds = set(SecurityEvent.objects.filter(user__email="dan@example.com").values_list("kind"))
    assert kinds == {(Kind.LOGIN,)}  # confirming logs in (ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION)


# Staff


def test_suspended_and_reactivated_by_staff_without_the_staffs_address(staff, alice):
    console = logged_in(staff)
    console.post(f"/admin/auth/user/{alice.user.pk}/suspend/", {"reason": "abuse"})
    console.post(f"/admin/auth/user/{alice.user.pk}/reactivate/", {"reason": "sorted out"})
    suspended, reactivated = only(alice, Kind.SUSPENDED), only(alice, Kind.REACTIVATED)
    for event in (suspended, reactivated):
        assert event.address is None and event.user_agent == ""
        assert event.detail == {"by": "staff"}  # the reason stays in the staff's admin log
    assert suspended.description == "Suspended by staff"
    assert events(staff, Kind.SUSPENDED) == []


def test_a_key_revoked_by_staff_says_so(staff, alice):
    logged_in(staff).post(
        "/admin/accounts/apikey/",
        {"action": "revoke", "_selected_action": [alice.api_key.pk]},
    )
    event = only(alice, Kind.KEY_REVOKED)
    assert event.detail["by"] == "staff" and event.address is None
    assert event.description.endswith("revoked by staff")


# One transaction with the change: both are kept, or neither


@pytest.fixture
def refuse_writes(db):
    """refuse_writes(table): every insert or update of `table` fails from now on (a trigger), as
    a full disk or a broken constraint would; the test's transaction takes it away again."""

    def refuse(table: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE OR REPLACE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )

    return refuse


LOG = "accounts_securityevent"


def test_a_key_whose_event_cannot_be_written_is_not_created(alice, refuse_writes):
    refuse_writes(LOG)
    with pytest.raises(DatabaseError):
        logged_in(alice).post("/keys/", {"name": "laptop", "expires_in_days": "30"})
    assert not ApiKey.objects.filter(name="laptop").exists()


def test_a_key_that_cannot_be_created_has_no_event(alice, refuse_writes):
    refuse_writes("accounts_apikey")
    with pytest.raises(DatabaseError):
        logged_in(alice).post("/keys/", {"name": "laptop", "expires_in_days": "30"})
    assert len(events(alice, Kind.KEY_CREATED)) == 1  # the persona's own key only


def test_a_revocation_whose_event_cannot_be_written_does_not_happen(alice, refuse_writes):
    refuse_writes(LOG)
    with pytest.raises(DatabaseError):
        logged_in(alice).post(f"/keys/{alice.api_key.pk}/revoke/")
    alice.api_key.refresh_from_db()
    assert alice.api_key.revoked_at is None


def test_a_login_whose_event_cannot_be_written_does_not_happen(alice, refuse_writes):
    last_login = alice.user.last_login
    refuse_writes(LOG)
    browser = browser_from()
    with pytest.raises(DatabaseError):
        log_in(browser, alice.email)
    alice.user.refresh_from_db()
    assert alice.user.last_login == last_login
    assert browser.get("/buckets/").status_code == 302  # not logged in


def test_a_login_that_fails_to_be_saved_has_no_event(alice, refuse_writes):
    refuse_writes("auth_user")  # last_login
    with pytest.raises(DatabaseError):
        log_in(browser_from(), alice.email)
    assert events(alice, Kind.LOGIN) == []


def test_a_password_whose_event_cannot_be_written_stays_the_old_one(alice, refuse_writes):
    browser = logged_in(alice)
    refuse_writes(LOG)
    with pytest.raises(DatabaseError):
        browser.post(
            "/accounts/password/change/",
            {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        )
    alice.user.refresh_from_db()
    assert alice.user.check_password(PASSWORD)


def test_a_password_that_fails_to_be_saved_has_no_event(alice, refuse_writes):
    browser = logged_in(alice)
    refuse_writes("auth_user")
    with pytest.raises(DatabaseError):
        browser.post(
            "/accounts/password/change/",
            {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        )
    assert events(alice, Kind.PASSWORD_CHANGED) == []


def test_a_token_that_cannot_be_created_has_no_event(alice, bucket, refuse_writes):
    refuse_writes("api_token")
    with pytest.raises(DatabaseError):
        logged_in(alice).post(
            f"/buckets/{bucket}/tokens/",
            {"prefix": "", "read": "on", "ttl": "600", "api_key": alice.api_key.pk},
        )
    assert events(alice, Kind.TOKEN_CREATED) == []


def test_two_factor_whose_event_cannot_be_written_stays_off(alice, refuse_writes):
    browser = at_two_factor_setup(alice)
    code = totp_code(browser.session[SECRET_SESSION_KEY])
    refuse_writes(LOG)
    with pytest.raises(DatabaseError):
        browser.post("/accounts/2fa/totp/activate/", {"code": code})
    assert not Authenticator.objects.filter(user=alice.user).exists()


def test_a_suspension_whose_event_cannot_be_written_does_not_happen(staff, alice, refuse_writes):
    refuse_writes(LOG)
    with pytest.raises(DatabaseError):
        logged_in(staff).post(f"/admin/auth/user/{alice.user.pk}/suspend/", {"reason": "x"})
    alice.user.refresh_from_db()
    assert alice.user.is_active


def test_an_expiry_whose_event_cannot_be_written_leaves_the_key_for_the_next_run(
    alice, refuse_writes
):
    ApiKey.objects.filter(pk=alice.api_key.pk).update(expires_at=timezone.now())
    refuse_writes(LOG)
    with pytest.raises(DatabaseError):
        expiry.revoke_expired(timezone.now())
    alice.api_key.refresh_from_db()
    assert alice.api_key.revoked_at is None


# Never a secret


def test_no_event_holds_a_password_key_token_or_recovery_code(carol, bucket, alice):
    browser = logged_in(alice)
    browser.post("/keys/", {"name": "laptop", "expires_in_days": "30"})
    key = re.search(r"tdb_\w+", browser.get("/keys/").content.decode()).group()
    made = browser.post(
        f"/buckets/{bucket}/tokens/",
        {"prefix": "", "read": "on", "ttl": "600", "api_key": alice.api_key.pk},
    )
    shown = browser.get(made["Location"]).content.decode()
    token = re.search(r'<code id="token">([^<]+)</code>', shown)[1]
    browser.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    log_in(browser_from(), alice.email, "a wrong guess of a password")
    send_code(carol.at_code_step(), carol.recovery_codes[0])

    stored = [f"{e.detail} {e.user_agent} {e.description}" for e in SecurityEvent.objects.all()]
    assert len(stored) >= 8
    secrets = [PASSWORD, NEW_PASSWORD, "a wrong guess", key, alice.key, token]
    secrets += [carol.recovery_codes[0], carol.secret]
    for secret in secrets:
        assert not any(secret in line for line in stored), secret


def test_an_event_takes_only_the_known_detail_fields(alice):
    with pytest.raises(ValueError, match="not a field"):
        security.record(alice.user, Kind.LOGIN, password=PASSWORD)
    with pytest.raises(ValueError, match="not a kind"):
        security.record(alice.user, "coffee")


def test_a_long_user_agent_is_cut(alice):
    log_in(browser_from(user_agent="x" * 5000), alice.email)
    assert only(alice, Kind.LOGIN).user_agent == "x" * security.USER_AGENT_MAX


# The account page


def test_the_account_page_lists_my_latest_events_and_not_bobs(alice, bob):
    log_in(browser_from(), alice.email)
    log_in(browser_from("198.51.100.9"), bob.email, "bob's wrong guess")
    bob.browser.post("/keys/", {"name": "bobs-secret-project", "expires_in_days": "30"})

    html = logged_in(alice).get("/account/").content.decode()
    rows = re.search(r'<table class="responsive" id="security-events">.*?</table>', html, re.S)
    assert rows, html
    table = rows.group()
    assert "Logged in" in table and ADDRESS in table and "Firefox/140.0" in table
    assert f"API key {alice.api_key.display_prefix}… (test) created" in table
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", table)
    assert "bobs-secret-project" not in html and "198.51.100.9" not in html
    assert "Failed login" not in html
    for page in ("/account/", "/account/security/"):
        bobs = logged_in(bob).get(page).content.decode()
        assert ADDRESS not in bobs and alice.api_key.display_prefix not in bobs


def test_the_account_page_shows_the_latest_ten_and_the_log_pages_the_rest(alice):
    for _ in range(60):
        security.record(alice.user, Kind.LOGIN_FAILED, step="password")
    html = alice.browser.get("/account/").content.decode()
    assert html.count('data-kind="login_failed"') == 10
    assert 'href="/account/security/"' in html

    first = alice.browser.get("/account/security/").content.decode()
    assert first.count("<tr data-kind=") == 50
    assert 'href="?page=2"' in first and "Page 1 of 2" in first
    second = alice.browser.get("/account/security/?page=2").content.decode()
    assert second.count("<tr data-kind=") == 11  # 60 and the persona's key
    assert "API key" in second  # the oldest, last
    assert alice.browser.get("/account/security/?page=x").status_code == 200  # the first page


def test_the_pages_need_a_login_and_have_no_inline_script_or_style(alice, client):
    assert client.get("/account/security/")["Location"].startswith("/accounts/login/")
    for path in ("/account/", "/account/security/"):
        response = alice.browser.get(path)
        assert "script-src" in response["Content-Security-Policy"]
        html = response.content.decode()
        assert " style=" not in html
        assert all("src=" in tag or "nonce=" in tag for tag in re.findall(r"<script[^>]*>", html))


def test_an_account_without_events_says_so(db):
    person = Persona("erin")
    SecurityEvent.objects.filter(user=person.user).delete()
    assert "Nothing yet in the last 90 days." in person.browser.get("/account/").content.decode()


# The staff console


def test_staff_see_every_accounts_events_filtered_and_searched(staff, alice, bob):
    log_in(browser_from(), alice.email)
    log_in(browser_from("198.51.100.9"), bob.email, "wrong")
    console = logged_in(staff)
    every = console.get("/admin/accounts/securityevent/").content.decode()
    assert "alice@example.com" in every and "bob@example.com" in every
    assert ADDRESS in every and "198.51.100.9" in every

    failed = console.get("/admin/accounts/securityevent/?kind=login_failed").content.decode()
    assert "bob@example.com" in failed and "alice@example.com" not in failed
    found = console.get("/admin/accounts/securityevent/?q=alice@").content.decode()
    assert "alice@example.com" in found and "bob@example.com" not in found
    one = console.get(f"/admin/accounts/securityevent/?user={bob.user.pk}").content.decode()
    assert "bob@example.com" in one and "alice@example.com" not in one
    person_page = console.get(f"/admin/auth/user/{bob.user.pk}/change/").content.decode()
    assert f'href="/admin/accounts/securityevent/?user={bob.user.pk}"' in person_page


def test_staff_cannot_add_change_or_delete_events(staff, alice):
    event = latest(alice, Kind.KEY_CREATED)
    console = logged_in(staff)
    assert console.get("/admin/accounts/securityevent/add/").status_code == 403
    page = console.get(f"/admin/accounts/securityevent/{event.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert console.post(f"/admin/accounts/securityevent/{event.pk}/delete/").status_code == 403
    assert SecurityEvent.objects.filter(pk=event.pk).exists()


def test_people_never_reach_the_consoles_log(alice):
    assert alice.browser.get("/admin/accounts/securityevent/").status_code == 302
