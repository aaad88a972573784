"""The buckets pages: list, create, change the default TTL, delete with a confirmation."""

import pytest

from api.models import Bucket, Item
from console.models import TaskHeartbeat, beat
from dashboard.roundtrip import key_ref

REFRESH = "api.tasks.refresh_stored_figures"


def test_the_list_shows_my_buckets_with_their_figures_and_when_beat_counted(alice, bob, bucket):
    Bucket.objects.filter(pk=bucket).update(key_count=1234, stored_bytes=2048, default_ttl=60)
    beat(REFRESH, TaskHeartbeat.FINISHED)
    counted = TaskHeartbeat.objects.get(task=REFRESH, event="finished").at
    bobs = bob.new_bucket()
    content = alice.browser.get("/buckets/").content
    assert bucket.encode() in content
    assert b"1,234" in content and b"2.0\xc2\xa0KB" in content and b"60 s" in content
    assert f"as of {counted:%H:%M:%S} UTC".encode() in content
    assert bobs.encode() not in content


def test_a_bucket_beat_has_not_counted_says_so_rather_than_zero(alice, bucket):
    for n in range(15):
        alice.set(bucket, f"k{n}", "v")
    content = alice.browser.get("/buckets/").content.decode()
    assert "not counted yet" in content
    assert '<td data-label="Keys" class="num">0</td>' not in content


def test_create_a_bucket(alice):
    response = alice.browser.post("/buckets/", {"default_ttl": "0"})
    assert response.status_code == 302
    created = Bucket.objects.get(owner=alice.user)
    assert response["Location"] == f"/buckets/{created.id}/"
    assert created.default_ttl == 0
    # It is the API's bucket: the API key sees it.
    assert alice.client.get(f"/v1/{created.id}").status_code == 200


@pytest.mark.parametrize("ttl", ["-1", "abc", "", "315360001"])
def test_a_bad_default_ttl_is_a_form_error_and_creates_nothing(alice, ttl):
    response = alice.browser.post("/buckets/", {"default_ttl": ttl})
    assert response.status_code == 400
    assert b"errorlist" in response.content
    assert not Bucket.objects.filter(owner=alice.user).exists()


def test_the_bucket_quota_is_the_apis(alice, settings):
    settings.THISDB_MAX_BUCKETS = 1
    assert alice.browser.post("/buckets/", {"default_ttl": "60"}).status_code == 302
    response = alice.browser.post("/buckets/", {"default_ttl": "60"})
    assert response.status_code == 400
    assert b"Bucket quota reached" in response.content
    assert Bucket.objects.filter(owner=alice.user).count() == 1


def test_change_the_default_ttl(alice, bucket):
    assert alice.client.get(f"/v1/{bucket}").status_code == 200  # cached by the API
    response = alice.browser.post(f"/buckets/{bucket}/settings/", {"default_ttl": "30"})
    assert response.status_code == 302
    assert Bucket.objects.get(pk=bucket).default_ttl == 30
    alice.set(bucket, "k", "v")  # the API's next write uses it at once (this worker)
    item = Item.objects.get(bucket_id=bucket, key="k")
    assert 25 <= (item.expires_at - item.updated_at).total_seconds() <= 30


def test_a_bad_ttl_change_changes_nothing(alice, bucket):
    alice.browser.post(f"/buckets/{bucket}/settings/", {"default_ttl": "soon"})
    assert Bucket.objects.get(pk=bucket).default_ttl == 604800


def test_delete_asks_naming_the_bucket_and_its_keys(alice, bucket):
    for key in ("a", "b", "c"):
        alice.set(bucket, key, "v")
    page = alice.browser.get(f"/buckets/{bucket}/delete/")
    assert page.status_code == 200
    assert bucket.encode() in page.content
    assert b"3 keys" in page.content
    assert Bucket.objects.filter(pk=bucket).exists()

    response = alice.browser.post(f"/buckets/{bucket}/delete/")
    assert response.status_code == 302
    assert not Bucket.objects.filter(pk=bucket).exists()
    assert not Item.objects.filter(bucket_id=bucket).exists()
    assert alice.client.get(f"/v1/{bucket}").status_code == 404


@pytest.mark.parametrize(
    "method, path, data",
    [
        ("get", "/buckets/{b}/", None),
        ("post", "/buckets/{b}/settings/", {"default_ttl": "1"}),
        ("get", "/buckets/{b}/delete/", None),
        ("post", "/buckets/{b}/delete/", {}),
        ("get", "/buckets/{b}/key/?key=secret", None),
        ("post", "/buckets/{b}/key/", {"key": "k", "value": "bob was here"}),
        ("post", "/buckets/{b}/key/delete/", {"k": key_ref("secret")}),
        ("post", "/buckets/{b}/key/increment/", {"k": key_ref("n"), "by": "1"}),
        ("get", "/buckets/{b}/key/?k=" + key_ref("secret"), None),
        ("get", "/buckets/{b}/key/delete/", None),
        ("get", "/buckets/{b}/tokens/", None),
        ("get", "/buckets/{b}/key/download/?key=secret", None),
        ("post", "/buckets/{b}/tokens/", {"prefix": "", "read": "on", "ttl": "60"}),
    ],
)
def test_another_accounts_bucket_is_a_404_and_nothing_changes(
    alice, bob, bucket, method, path, data
):
    alice.set(bucket, "secret", "alice's value")
    alice.set(bucket, "n", "1")
    response = getattr(bob.browser, method)(path.format(b=bucket), data)
    assert response.status_code == 404
    assert b"alice's value" not in response.content
    assert Bucket.objects.get(pk=bucket).default_ttl == 604800
    assert alice.client.get(f"/v1/{bucket}/secret").content == b"alice's value"
    assert alice.client.get(f"/v1/{bucket}/n").content == b"1"
    assert alice.client.get(f"/v1/{bucket}/k").status_code == 404


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/buckets/"),
        ("post", "/buckets/"),
        ("get", "/buckets/{b}/"),
        ("post", "/buckets/{b}/settings/"),
        ("get", "/buckets/{b}/delete/"),
        ("post", "/buckets/{b}/delete/"),
        ("get", "/buckets/{b}/key/?key=k"),
        ("post", "/buckets/{b}/key/"),
        ("post", "/buckets/{b}/key/delete/"),
        ("post", "/buckets/{b}/key/increment/"),
        ("get", "/buckets/{b}/key/download/?key=k"),
        ("post", "/buckets/{b}/tokens/"),
        ("post", "/buckets/{b}/tokens/1/revoke/"),
        ("get", "/usage/"),
    ],
)
def test_anonymous_people_are_sent_to_log_in_and_change_nothing(
    client, alice, bucket, method, path
):
    alice.set(bucket, "k", "v")
    response = getattr(client, method)(path.format(b=bucket), {"key": "k", "default_ttl": "1"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert alice.client.get(f"/v1/{bucket}/k").content == b"v"
    assert Bucket.objects.get(pk=bucket).default_ttl == 604800


def test_a_label_is_set_at_creation_changed_and_shown_beside_the_id(alice, bucket):
    response = alice.browser.post("/buckets/", {"label": "carts", "default_ttl": "60"})
    created = Bucket.objects.get(pk=response["Location"].split("/")[2])
    assert created.label == "carts"
    alice.browser.post(f"/buckets/{bucket}/settings/", {"label": "sessions", "default_ttl": "1"})
    assert Bucket.objects.get(pk=bucket).label == "sessions"
    listing = alice.browser.get("/buckets/").content.decode()
    assert f'{bucket}</a> <span class="label">sessions</span>' in listing
    assert f'{created.id}</a> <span class="label">carts</span>' in listing
    # The API does not change: no label in its answers.
    assert b"sessions" not in alice.client.get("/v1/?format=json").content


def test_a_label_over_100_characters_is_refused_and_changes_nothing(alice, bucket):
    response = alice.browser.post(
        f"/buckets/{bucket}/settings/", {"label": "x" * 101, "default_ttl": "1"}, follow=True
    )
    assert "Ensure this value has at most 100 characters (it has 101)." in response.content.decode()
    assert Bucket.objects.get(pk=bucket).label == ""
    assert Bucket.objects.get(pk=bucket).default_ttl == 604800
