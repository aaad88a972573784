"""Live API keys per account are capped by the plan (free: 10), since each key has its own hourly
requests: refused on the keys page and by `manage.py createapikey` with what to do about it;
revoked and expired keys do not count; two racing creates cannot both take the last slot."""

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Account, ApiKey, Plan, TooManyApiKeys
from api import lifecycle
from tests.accounts.test_createapikey import MANAGE_PY
from tests.conftest import RUN_PREFIX, Persona

FREE = 10  # THISDB_MAX_API_KEYS


def create(person, name: str = "laptop"):
    return person.browser.post("/keys/", {"name": name, "expires_in_days": "90"})


def fill_up(person, count: int) -> None:
    fill_up_user(person.user, count)


def fill_up_user(user, count: int) -> None:
    for n in range(count):
        ApiKey.objects.create_key(user, name=f"key {n}")


def live(person) -> int:
    return ApiKey.objects.active().filter(user=person.user).count()


def test_the_page_refuses_a_key_past_the_cap_and_says_what_to_do(alice):
    fill_up(alice, FREE - 1)  # and the persona's own
    response = create(alice, "one too many")
    assert response.status_code == 403
    assert b"your plan allows 10 live API keys" in response.content
    assert b"Revoke one you no longer use" in response.content
    assert not ApiKey.objects.filter(name="one too many").exists()
    assert live(alice) == FREE
    assert b"10 of 10 live keys" in response.content


def test_revoked_and_expired_keys_do_not_count(alice):
    fill_up(alice, FREE - 1)
    lifecycle.revoke_api_key(ApiKey.objects.filter(user=alice.user, name="key 0").get())
    ApiKey.objects.filter(user=alice.user, name="key 1").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert create(alice, "after revoking").status_code != 403
    assert create(alice, "after expiry").status_code != 403
    assert create(alice, "one too many").status_code == 403
    assert live(alice) == FREE


def test_createapikey_refuses_past_the_cap(alice):
    fill_up(alice, FREE - 1)
    with pytest.raises(CommandError) as raised:
        call_command("createapikey", "alice")
    message = str(raised.value)
    assert "10 live API keys, the most the plan allows" in message
    assert "revoke one" in message
    assert live(alice) == FREE


def test_the_cap_follows_the_plan_and_the_accounts_override(alice, bob):
    small = Plan.objects.create(name="small", max_api_keys=2)
    Account.objects.filter(user=alice.user).update(plan=small)
    ApiKey.objects.create_key(alice.user)
    with pytest.raises(TooManyApiKeys):
        ApiKey.objects.create_key(alice.user)

    Account.objects.filter(user=bob.user).update(plan=small, max_api_keys=12)
    fill_up(bob, 11)
    with pytest.raises(TooManyApiKeys):
        ApiKey.objects.create_key(bob.user)


def test_bob_is_not_held_up_by_alices_keys(alice, bob):
    fill_up(alice, FREE - 1)
    assert create(alice).status_code == 403
    assert create(bob).status_code != 403


@pytest.mark.django_db(transaction=True)
def test_racing_creates_cannot_both_take_the_last_slot():
    """Three `createapikey` processes race for the last slot. The test holds a lock that lets
    them read but not add keys until all three are waiting, so each has counted before any has
    added: without the lock on the user's row, all three would count 9 and add a key."""
    Persona("carol")
    user = get_user_model().objects.get(username="carol")
    fill_up_user(user, FREE - 2)  # one slot left
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "THISDB_REDIS_PREFIX": RUN_PREFIX,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("LOCK TABLE accounts_apikey IN SHARE MODE")  # reads pass, inserts wait
        racers = [
            subprocess.Popen(
                [sys.executable, str(MANAGE_PY), "createapikey", "carol", "--name", "racer"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # Within a transaction the activity view is a snapshot unless it is cleared.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0] == len(racers):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the racers never all waited on the lock")
    outcomes = sorted(racer.wait(timeout=60) for racer in racers)
    assert outcomes == [0, 1, 1], [racer.stderr.read() for racer in racers]
    assert ApiKey.objects.active().filter(user=user).count() == FREE


def test_staff_set_the_cap_in_the_plan_and_account_forms(staff):
    assert b'name="max_api_keys"' in staff.browser.get("/admin/accounts/plan/add/").content
    account = Account.objects.get(user=staff.user)
    page = staff.browser.get(f"/admin/accounts/account/{account.pk}/change/")
    assert b'name="max_api_keys"' in page.content
    assert b"max api keys: 10" in page.content  # the quotas in force


def test_the_usage_page_has_a_meter_for_live_keys(alice):
    fill_up(alice, 2)
    html = alice.browser.get("/usage/").content.decode()
    assert "Live API keys" in html
    assert '<meter min="0" max="10" value="3"' in html
