"""Suspending a person from their page in the staff console, and what the person then sees.

Staff press Suspend (or Reactivate) on the person's page, confirm with a reason, and the reason
is recorded in the admin log; the page explains the state instead of an "active" checkbox. An
account made by `createapikey --create-user` (no email) is known by its username. A suspended
person who logs in, or whose session was open, is told the account is suspended and whom to
write (THISDB_SUPPORT_EMAIL)."""

import os
import re
import subprocess
import sys

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from api import lifecycle
from tests.conftest import PASSWORD


def change_page(staff, user) -> str:
    return staff.browser.get(f"/admin/auth/user/{user.pk}/change/").content.decode()


def confirm(staff, user, action: str, reason: str):
    return staff.browser.post(f"/admin/auth/user/{user.pk}/{action}/", {"reason": reason})


def test_the_persons_page_suspends_after_a_confirmation_and_records_the_reason(
    staff, alice, bucket
):
    page = change_page(staff, alice.user)
    assert f'href="/admin/auth/user/{alice.user.pk}/suspend/"' in page
    assert "/reactivate/" not in page

    confirmation = staff.browser.get(f"/admin/auth/user/{alice.user.pk}/suspend/")
    assert confirmation.status_code == 200
    html = confirmation.content.decode()
    assert 'name="reason"' in html and "Suspend alice@example.com</button>" in html
    alice.user.refresh_from_db()
    assert alice.user.is_active  # asking is not doing

    response = confirm(staff, alice.user, "suspend", "chargeback on invoice 42")
    assert response["Location"] == f"/admin/auth/user/{alice.user.pk}/change/"
    alice.user.refresh_from_db()
    assert not alice.user.is_active
    assert alice.client.get(f"/v1/{bucket}").content.startswith(b"this account is suspended")
    entry = LogEntry.objects.get(object_id=str(alice.user.pk))
    assert entry.get_change_message() == "Suspended the account: chargeback on invoice 42"
    assert entry.user == staff.user
    page = change_page(staff, alice.user)
    assert "Suspended since" in page and "chargeback on invoice 42" in page
    assert f'href="/admin/auth/user/{alice.user.pk}/reactivate/"' in page

    confirm(staff, alice.user, "reactivate", "paid in full")
    alice.user.refresh_from_db()
    assert alice.user.is_active
    assert alice.client.get(f"/v1/{bucket}").status_code == 200
    assert "Reactivated the account: paid in full" in change_page(staff, alice.user)


def test_a_confirmation_without_a_reason_changes_nothing_and_asks_for_it(staff, alice):
    response = confirm(staff, alice.user, "suspend", "  ")
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    alice.user.refresh_from_db()
    assert alice.user.is_active
    assert not LogEntry.objects.filter(object_id=str(alice.user.pk)).exists()


def test_staff_cannot_suspend_themselves_from_their_page(staff):
    assert "/suspend/" not in change_page(staff, staff.user)
    response = confirm(staff, staff.user, "suspend", "oops")
    assert response.status_code == 302
    staff.user.refresh_from_db()
    assert staff.user.is_active


def test_only_staff_reach_the_buttons(alice, bob):
    response = alice.browser.post(f"/admin/auth/user/{bob.user.pk}/suspend/", {"reason": "x"})
    assert response.status_code == 302 and "/login/" in response["Location"]
    bob.user.refresh_from_db()
    assert bob.user.is_active


def test_the_page_explains_the_state_where_a_checkbox_was(staff, alice):
    page = change_page(staff, alice.user)
    assert 'name="is_active"' not in page
    assert "Active: can log in, and the API keys and tokens work" in page
    lifecycle.suspend_account(alice.user)
    assert "Suspended: cannot log in, and the API keys and tokens are refused" in change_page(
        staff, alice.user
    )


def test_an_account_without_email_is_known_by_its_username(staff, capsys):
    call_command("createapikey", "carol-ci", "--create-user")
    carol = get_user_model().objects.get(username="carol-ci")
    assert carol.email == ""
    listing = staff.browser.get("/admin/auth/user/").content.decode()
    link = f'<a href="/admin/auth/user/{carol.pk}/change/">carol-ci</a>'
    assert link in listing
    page = change_page(staff, carol)
    assert re.search(r"carol-ci \(no email\) · active · plan free", page)


def test_a_suspended_person_who_logs_in_is_told_so_and_whom_to_write(alice, settings):
    settings.THISDB_SUPPORT_EMAIL = "help@db.example.com"
    lifecycle.suspend_account(alice.user)
    response = Client().post(
        "/accounts/login/", {"login": alice.email, "password": PASSWORD}, follow=True
    )
    html = response.content.decode()
    assert response.redirect_chain[-1][0] == "/accounts/inactive/"
    assert "This account is suspended" in html
    assert '<a href="mailto:help@db.example.com">help@db.example.com</a>' in html


def test_a_suspended_person_with_an_open_session_is_told_so_and_logged_out(alice, settings):
    settings.THISDB_SUPPORT_EMAIL = "help@db.example.com"
    assert alice.browser.get("/buckets/").status_code == 200
    lifecycle.suspend_account(alice.user)

    response = alice.browser.get("/buckets/", follow=True)
    assert response.redirect_chain[-1][0] == "/accounts/inactive/"
    assert "mailto:help@db.example.com" in response.content.decode()
    assert "_auth_user_id" not in alice.browser.session  # the session ended

    lifecycle.reactivate_account(alice.user)
    assert alice.browser.get("/buckets/")["Location"].startswith("/accounts/login/")


def test_a_logged_out_visitor_still_gets_the_login_form(alice):
    assert Client().get("/buckets/")["Location"] == "/accounts/login/?next=/buckets/"


@pytest.mark.parametrize(
    "base_url, address",
    [
        ("https://db.example.com", "support@db.example.com"),
        ("http://127.0.0.1:8000", "support@localhost"),
    ],
)
def test_the_support_address_defaults_to_support_at_the_platforms_host(base_url, address):
    env = {k: v for k, v in os.environ.items() if k != "THISDB_SUPPORT_EMAIL"}
    env.update(THISDB_BASE_URL=base_url, DJANGO_SETTINGS_MODULE="thisdb_site.settings")
    script = "from django.conf import settings; print(settings.THISDB_SUPPORT_EMAIL)"
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == address
