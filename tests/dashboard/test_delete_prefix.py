"""The bucket page's "Delete keys with this prefix": offered when the page is filtered, a
confirmation that names the prefix and counts its live keys (exact up to the bound one deletion
takes), then one delete_prefix transaction through api.writes."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Account
from api import limits, transactions
from api.models import Bucket, Item
from tests.conftest import fill_keys


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def keys_in(bucket: str) -> list[str]:
    return sorted(Item.objects.filter(bucket_id=bucket).values_list("key", flat=True))


def test_the_button_is_offered_only_on_a_filtered_page(alice, bucket):
    alice.set(bucket, "user:1", "v")
    whole = alice.browser.get(f"/buckets/{bucket}/").content.decode()
    assert "Delete keys with this prefix" not in whole
    filtered = alice.browser.get(f"/buckets/{bucket}/?prefix=user%3A").content.decode()
    link = re.search(r'<a class="button danger" id="delete-prefix" href="([^"]+)"', filtered)
    assert link.group(1) == f"/buckets/{bucket}/delete-prefix/?prefix=user%3A"


def test_the_confirmation_names_the_prefix_and_counts_its_live_keys(alice, bucket):
    for key in ("user:1", "user:2", "user:3", "users", "other"):
        alice.set(bucket, key, "v")
    alice.set(bucket, "user:gone", "v", "?ttl=1")
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Item.objects.filter(bucket_id=bucket, key="user:gone").update(expires_at=an_hour_ago)
    page = alice.browser.get(f"/buckets/{bucket}/delete-prefix/", {"prefix": "user:"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Delete the keys starting with" in html and "user:" in html
    assert "<strong>3 keys</strong> start with" in html  # the expired key does not count
    assert "Delete 3 keys</button>" in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert len(keys_in(bucket)) == 6  # asking deletes nothing


def test_post_deletes_them_and_says_how_many(alice, bucket):
    for key in ("user:1", "user:2", "users", "other"):
        alice.set(bucket, key, "v")
    response = alice.browser.post(f"/buckets/{bucket}/delete-prefix/", {"prefix": "user:"})
    assert response.status_code == 303
    assert response["Location"] == f"/buckets/{bucket}/?prefix=user%3A"
    assert keys_in(bucket) == ["other", "users"]
    page = alice.browser.get(response["Location"])
    assert messages_of(page) == ["Deleted 2 keys starting with “user:”."]
    assert "No keys start with “user:”." in page.content.decode()
    # The API agrees at once.
    assert alice.client.get(f"/v1/{bucket}/user:1").status_code == 404

    again = alice.browser.post(
        f"/buckets/{bucket}/delete-prefix/", {"prefix": "users"}, follow=True
    )
    assert messages_of(again) == ["Deleted 1 key starting with “users”."]


def test_the_forms_are_csrf_protected(alice, bucket):
    alice.set(bucket, "user:1", "v")
    alice.browser.handler.enforce_csrf_checks = True
    response = alice.browser.post(f"/buckets/{bucket}/delete-prefix/", {"prefix": "user:"})
    assert response.status_code == 403
    assert keys_in(bucket) == ["user:1"]


@pytest.mark.parametrize("method", ["get", "post"])
def test_an_empty_prefix_is_refused_and_deletes_nothing(alice, bucket, method):
    alice.set(bucket, "a", "v")
    response = getattr(alice.browser, method)(f"/buckets/{bucket}/delete-prefix/", {"prefix": ""})
    assert response.status_code == 303
    assert response["Location"] == f"/buckets/{bucket}/"
    page = alice.browser.get(response["Location"])
    assert messages_of(page) == [
        "Filter by a prefix first: an empty prefix would delete every key. "
        "To delete them all, delete the bucket."
    ]
    assert keys_in(bucket) == ["a"]


@pytest.mark.parametrize("method", ["get", "post"])
def test_another_accounts_bucket_is_a_404_and_nothing_is_deleted(alice, bob, bucket, method):
    alice.set(bucket, "user:1", "alice's value")
    response = getattr(bob.browser, method)(
        f"/buckets/{bucket}/delete-prefix/", {"prefix": "user:"}
    )
    assert response.status_code == 404
    assert b"alice's value" not in response.content
    assert keys_in(bucket) == ["user:1"]


def test_anonymous_people_are_sent_to_log_in(client, alice, bucket):
    alice.set(bucket, "user:1", "v")
    response = client.post(f"/buckets/{bucket}/delete-prefix/", {"prefix": "user:"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert keys_in(bucket) == ["user:1"]


def test_past_the_bound_it_says_so_and_deletes_nothing(alice, bucket):
    fill_keys(bucket, transactions.DELETE_PREFIX_MAX + 1)  # keys k0000000 ...
    page = alice.browser.get(f"/buckets/{bucket}/delete-prefix/", {"prefix": "k"})
    html = page.content.decode()
    assert "More than <strong>10,000 keys</strong> start with" in html
    assert "Use a longer prefix" in html
    assert "<form" not in html.split('id="delete-prefix"')[1]  # no button to press

    response = alice.browser.post(f"/buckets/{bucket}/delete-prefix/", {"prefix": "k"})
    assert response.status_code == 303
    assert messages_of(alice.browser.get(response["Location"])) == [
        "More than 10,000 keys start with “k”, more than one deletion takes: nothing was "
        "deleted. Use a longer prefix."
    ]
    assert Item.objects.filter(bucket_id=bucket).count() == transactions.DELETE_PREFIX_MAX + 1

    # A longer prefix within the bound goes.
    response = alice.browser.post(f"/buckets/{bucket}/delete-prefix/", {"prefix": "k00000"})
    assert messages_of(alice.browser.get(response["Location"])) == [
        "Deleted 100 keys starting with “k00000”."
    ]


def test_it_counts_no_request_and_takes_no_write_slot(alice, bucket):
    alice.set(bucket, "user:1", "v")
    alice.client.get(f"/v1/{bucket}")
    before = limits.current_counts(alice.user.pk, [alice.api_key.pk])[alice.api_key.pk]
    alice.browser.post(f"/buckets/{bucket}/delete-prefix/", {"prefix": "user:"})
    assert limits.current_counts(alice.user.pk, [alice.api_key.pk])[alice.api_key.pk] == before
    # The key written a moment ago was deleted all the same, and may be written again at once:
    # a prefix delete claims no key's one write of the second.
    assert keys_in(bucket) == []
    assert alice.set(bucket, "user:2", "v").status_code == 200


def test_a_key_displayed_with_invisible_characters_is_named_as_shown(alice, bucket):
    alice.set(bucket, "a%0Ab:1", "v")  # the key "a\nb:1"
    page = alice.browser.get(f"/buckets/{bucket}/delete-prefix/", {"prefix": "a\nb"})
    assert "<strong>1 key</strong> starts with" in page.content.decode()
    response = alice.browser.post(f"/buckets/{bucket}/delete-prefix/", {"prefix": "a\nb"})
    assert messages_of(alice.browser.get(response["Location"])) == [
        "Deleted 1 key starting with “a␊b”."
    ]
    assert keys_in(bucket) == []
    assert Bucket.objects.filter(pk=bucket).exists()
    assert Account.objects.filter(user=alice.user).exists()
