"""The first staff account, made with `manage.py createsuperuser`: an email is required (people and
staff log in by email), no other account's; it counts as verified, so the new superuser logs in
at once and reaches /admin/, with no verification email to click."""

import os
import sys

import pexpect
import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from tests.accounts.test_createapikey import MANAGE_PY
from tests.conftest import PASSWORD, RUN_PREFIX

User = get_user_model()


def log_in_to_the_admin(email: str) -> Client:
    browser = Client()
    response = browser.post("/accounts/login/?next=/admin/", {"login": email, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/admin/", "the login did not go through"
    assert browser.get("/admin/").status_code == 200
    return browser


def create_superuser(monkeypatch, *args: str) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    call_command("createsuperuser", "--noinput", *args, stdout=open(os.devnull, "w"))


def test_createsuperuser_makes_staff_who_log_in_at_once(db, monkeypatch):
    create_superuser(monkeypatch, "--username", "ops", "--email", "ops@example.com")
    user = User.objects.get(username="ops")
    assert user.is_staff and user.is_superuser
    address = EmailAddress.objects.get(user=user)
    assert (address.email, address.verified, address.primary) == ("ops@example.com", True, True)
    log_in_to_the_admin("ops@example.com")


def test_an_email_is_required(db, monkeypatch):
    with pytest.raises(CommandError) as raised:
        create_superuser(monkeypatch, "--username", "ops", "--email", "")
    assert "an email is required" in str(raised.value)
    assert not User.objects.filter(username="ops").exists()


def test_another_accounts_email_is_refused(alice, monkeypatch):
    with pytest.raises(CommandError) as raised:
        create_superuser(monkeypatch, "--username", "ops", "--email", alice.email.upper())
    assert f"{alice.email.upper()} is another account's email" in str(raised.value)
    assert not User.objects.filter(username="ops").exists()


def test_a_superuser_made_in_a_python_shell_logs_in_at_once(db):
    User.objects.create_superuser("ops", "ops@example.com", PASSWORD)
    log_in_to_the_admin("ops@example.com")


def test_people_who_sign_up_are_still_verified_by_email(db):
    user = User.objects.create_user("dave", "dave@example.com", PASSWORD)
    assert not EmailAddress.objects.filter(user=user, verified=True).exists()


@pytest.mark.django_db(transaction=True)
def test_createsuperuser_at_a_terminal_asks_again_for_a_missing_email(settings):
    # The command hashes the password the production way: let this process check such hashes.
    settings.PASSWORD_HASHERS = [
        *settings.PASSWORD_HASHERS,
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "THISDB_REDIS_PREFIX": RUN_PREFIX,
    }
    terminal = pexpect.spawn(
        sys.executable, [str(MANAGE_PY), "createsuperuser"], env=env, encoding="utf-8", timeout=60
    )
    terminal.expect("Username")
    terminal.sendline("ops")
    terminal.expect("Email address: ")
    terminal.sendline("")
    terminal.expect("Error: an email is required")
    terminal.expect("Email address: ")
    terminal.sendline("ops@example.com")
    terminal.expect("Password: ")
    terminal.sendline(PASSWORD)
    terminal.expect(r"Password \(again\): ")
    terminal.sendline(PASSWORD)
    terminal.expect("Superuser created successfully.")
    terminal.expect(pexpect.EOF)
    log_in_to_the_admin("ops@example.com")
