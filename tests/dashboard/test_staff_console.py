"""The staff console (Django admin at /admin/): people with their keys, buckets and plan; suspend,
reactivate, revoke keys, change plan, each recorded; buckets, tokens and items; the overview."""

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client

from accounts.models import Account, ApiKey, Plan
from api import lifecycle, principals
from api.models import Bucket
from tests.conftest import PASSWORD, token_client


def act(staff, action: str, users, **extra):
    return staff.browser.post(
        "/admin/auth/user/",
        {"action": action, "_selected_action": [u.pk for u in users], **extra},
    )


def test_anonymous_and_non_staff_are_sent_to_the_login_page(alice, client):
    assert client.get("/admin/")["Location"] == "/admin/login/?next=/admin/"
    response = alice.browser.get("/admin/", follow=True)
    assert response.redirect_chain[-1][0] == "/accounts/login/?next=%2Fadmin%2F"
    assert b"needs a staff account" in response.content
    assert alice.browser.get("/admin/overview/").status_code == 302
    assert alice.browser.get("/admin/auth/user/").status_code == 302


def test_people_are_listed_with_keys_buckets_and_plan_and_searchable_by_email(staff, alice, bob):
    ApiKey.objects.create_key(alice.user, name="second")
    alice.new_bucket()
    alice.new_bucket()
    pro = Plan.objects.create(name="pro")
    Account.objects.filter(user=bob.user).update(plan=pro)

    html = staff.browser.get("/admin/auth/user/?q=example.com").content.decode()
    table = re.search(r'<table id="result_list">.*?</table>', html, re.S).group()
    rows = {
        re.search(r"[a-z]+@example\.com", row).group(): re.findall(
            r'<td class="field-[^"]*"[^>]*>(.*?)</td>', row, re.S
        )
        for row in re.findall(r"<tr>.*?</tr>", table, re.S)
        if "@example.com" in row
    }
    assert rows["alice@example.com"][:4] == ["free", "2", "2", "active"]
    assert rows["bob@example.com"][:4] == ["pro", "1", "0", "active"]
    found = staff.browser.get("/admin/auth/user/?q=bob@").content.decode()
    assert "bob@example.com" in found and "alice@example.com" not in found


def test_suspend_stops_keys_and_tokens_and_login_keeps_data_and_is_recorded(staff, alice, bucket):
    alice.set(bucket, "k", "v")
    token = alice.token(bucket, "", "read")
    assert alice.client.get(f"/v1/{bucket}/k").status_code == 200
    assert token_client(token).get(f"/v1/{bucket}/k").status_code == 200

    response = act(staff, "suspend", [alice.user])

    assert response.status_code == 302
    for client in (alice.client, token_client(token)):
        response = client.get(f"/v1/{bucket}/k")
        assert response.status_code == 403
        assert response.content == b"this account is suspended: contact the platform's staff"
    login = Client().post("/accounts/login/", {"login": alice.email, "password": PASSWORD})
    assert login["Location"] == "/accounts/inactive/"
    assert alice.browser.get("/buckets/").status_code == 302  # the open session ends too
    assert Bucket.objects.filter(pk=bucket).exists()
    page = staff.browser.get(f"/admin/auth/user/{alice.user.pk}/change/").content.decode()
    assert "Suspended the account" in page and "suspended" in page

    act(staff, "reactivate", [alice.user])

    assert alice.client.get(f"/v1/{bucket}/k").content == b"v"
    assert token_client(token).get(f"/v1/{bucket}/k").status_code == 200
    assert (
        "Reactivated the account"
        in staff.browser.get(f"/admin/auth/user/{alice.user.pk}/change/").content.decode()
    )


def test_suspension_reaches_a_worker_that_cached_the_key(staff, alice, bucket):
    """Another worker keeps its cached lookups: the Redis marker read in the request's one round
    trip refuses the key there at once."""
    assert alice.client.get(f"/v1/{bucket}").status_code == 200
    other_worker_cache = dict(principals._api_keys)

    act(staff, "suspend", [alice.user])
    principals._api_keys.update(other_worker_cache)  # as a worker that has not looked again

    response = alice.client.get(f"/v1/{bucket}")
    assert response.status_code == 403
    assert response.content.startswith(b"this account is suspended")


def test_revocation_reaches_a_worker_that_cached_the_key(alice, bucket):
    assert alice.client.get(f"/v1/{bucket}").status_code == 200
    other_worker_cache = dict(principals._api_keys)
    lifecycle.revoke_api_key(ApiKey.objects.get(pk=alice.api_key.pk))
    principals._api_keys.update(other_worker_cache)
    response = alice.client.get(f"/v1/{bucket}")
    assert response.status_code == 403
    assert response.content.startswith(b"this API key has been revoked")


def test_the_user_form_has_no_active_checkbox_to_suspend_with(staff, alice, bucket):
    """Suspension is the page's Suspend button (with a reason, tests/test_suspension.py): the
    form's fields leave it alone, so it never says "active" beside "suspended"."""
    page = staff.browser.get(f"/admin/auth/user/{alice.user.pk}/change/").content.decode()
    assert 'name="is_active"' not in page
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page))
    data = {"username": alice.user.username, "email": alice.email, "is_active": ""}
    data["csrfmiddlewaretoken"] = fields.get("csrfmiddlewaretoken", "")
    response = staff.browser.post(f"/admin/auth/user/{alice.user.pk}/change/", data)
    assert response.status_code == 302, response.content[:2000]
    alice.user.refresh_from_db()
    assert alice.user.is_active
    assert alice.client.get(f"/v1/{bucket}").status_code == 200


def test_staff_cannot_suspend_themselves(staff):
    act(staff, "suspend", [staff.user])
    staff.user.refresh_from_db()
    assert staff.user.is_active


def test_revoke_all_keys_of_an_account(staff, alice, bob):
    _, second = ApiKey.objects.create_key(alice.user, name="second")
    act(staff, "revoke_keys", [alice.user])
    assert alice.client.post("/v1/").status_code == 403
    assert Client(headers={"X-Api-Key": second}).post("/v1/").status_code == 403
    assert bob.client.post("/v1/").status_code == 200
    entry = LogEntry.objects.get(object_id=str(alice.user.pk))
    assert entry.get_change_message() == "Revoked all 2 API key(s)"


def test_change_plan(staff, alice):
    pro = Plan.objects.create(name="pro", requests_per_hour=5)
    act(staff, "change_plan", [alice.user], plan=pro.pk)
    assert Account.objects.get(user=alice.user).plan == pro
    for _ in range(5):
        alice.client.post("/v1/")
    assert alice.client.post("/v1/").status_code == 429  # the new plan's limit, at once here
    assert (
        "Changed the plan to pro"
        in staff.browser.get(f"/admin/auth/user/{alice.user.pk}/change/").content.decode()
    )


def test_change_plan_without_a_plan_says_so(staff, alice):
    response = act(staff, "change_plan", [alice.user], plan="")
    assert "Choose a plan" in staff.browser.get(response["Location"]).content.decode()


def test_buckets_show_owner_keys_and_bytes(staff, alice, bucket):
    Bucket.objects.filter(pk=bucket).update(key_count=12, stored_bytes=3 * 1024 * 1024)
    html = staff.browser.get(f"/admin/api/bucket/?q={alice.email}").content.decode()
    assert bucket in html and "alice@example.com" in html and "12" in html and "3.0\xa0MB" in html


def test_tokens_are_listed(staff, alice, bucket):
    alice.token(bucket, "user:", "read")
    html = staff.browser.get(f"/admin/api/token/?q={bucket}").content.decode()
    assert "user:" in html


@pytest.mark.parametrize(
    "query, shown, hidden",
    [("{bucket}", ["user:1", "blob"], []), ("user:", ["user:1"], ["blob"])],
)
def test_items_are_searchable_by_bucket_and_key(staff, alice, bob, bucket, query, shown, hidden):
    alice.set(bucket, "user:1", "x" * 500)
    alice.set(bucket, "blob", b"\xff\xfe" * 1000)
    bob.set(bob.new_bucket(), "bobs-key", "v")
    html = staff.browser.get(f"/admin/api/item/?q={query.format(bucket=bucket)}").content.decode()
    for key in shown:
        assert key in html
    for key in hidden + ["bobs-key"]:
        assert key not in html
    if "blob" in shown:
        assert "(binary, 2.0\xa0KB)" in html
    assert "x" * 100 not in html  # values are cut short


def test_the_overview_shows_figures_health_and_a_chart(staff, alice, bucket):
    alice.client.get(f"/v1/{bucket}")
    html = staff.browser.get("/admin/overview/").content.decode()
    assert "Accounts" in html and "Requests, last hour" in html
    assert '<svg class="chart"' in html
    assert re.search(r"<td>database</td>\s*<td><span class=\"state ok\">up", html)
    assert re.search(r"<td>redis</td>\s*<td><span class=\"state ok\">up", html)
    assert "celery worker" in html and "celery beat" in html


def test_reactivation_reaches_a_worker_that_saw_the_suspension(staff, alice, bucket):
    """A worker that looked the key up while the account was suspended does not keep that
    answer: reactivated, the key works there at once too."""
    act(staff, "suspend", [alice.user])
    assert alice.client.get(f"/v1/{bucket}").status_code == 403  # looked up while suspended
    other_worker_cache = dict(principals._api_keys)
    lifecycle.reactivate_account(alice.user)
    principals._api_keys.update(other_worker_cache)
    assert alice.client.get(f"/v1/{bucket}").status_code == 200


def health_states(html: str) -> dict[str, str]:
    cells = re.findall(r'<td>([a-z ]+)</td>\s*<td><span class="state \w+">([^<]+)</span>', html)
    return dict(cells)


def test_the_overview_says_not_configured_for_what_the_embedded_default_runs_without(
    staff, settings
):
    """No REDIS_URL: in-process limits and the filesystem broker, neither ever "up"."""
    settings.REDIS_URL = ""
    settings.CELERY_BROKER_URL = "filesystem://"
    html = staff.browser.get("/admin/overview/").content.decode()
    states = health_states(html)
    assert states["redis"] == "not configured"
    assert states["celery worker"] == "not configured"
    assert states["database"] == "up"
    assert "in-process limits" in html and "filesystem broker" in html
