"""The bucket page's live list: its watch route (/buckets/<id>/watch/), the person's own watch
of their bucket, and what the page gives its script. The stream itself needs the front and a
browser: tests/test_browser_live.py."""

import json

import pytest
from django.test import Client

from api import history
from api.watching import FRONT

BEHIND_THE_FRONT = {FRONT: True}  # what the front adds to every request it serves


def watch_url(bucket: str, query: str = "") -> str:
    return f"/buckets/{bucket}/watch/" + (f"?{query}" if query else "")


def test_an_anonymous_visitor_is_sent_to_log_in(bucket):
    response = Client().get(watch_url(bucket))

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_another_accounts_bucket_is_404(bob, bucket):
    response = bob.browser.get(watch_url(bucket, "format=json&wait=0"))

    assert response.status_code == 404


def test_a_bucket_that_does_not_exist_is_404(alice):
    assert alice.browser.get(watch_url("nosuchbucket0000")).status_code == 404


def test_only_get(alice, bucket):
    assert alice.browser.post(watch_url(bucket)).status_code == 405


def test_the_owner_watches_their_bucket_with_the_pages_prefix(alice, bucket):
    history.start_watching(bucket)  # as the page does before its list: changes are recorded
    alice.set(bucket, "a:1", "one")
    alice.set(bucket, "b:1", "other prefix")

    response = alice.browser.get(watch_url(bucket, "prefix=a%3A&since=0&format=json"))

    assert response.status_code == 200, response.content
    events = json.loads(response.content)["events"]
    assert [(e["type"], e["key"], e["value"]) for e in events] == [("put", "a:1", "one")]


def test_the_stream_is_the_apis_stream_of_events(alice, bucket):
    history.start_watching(bucket)
    alice.set(bucket, "k", "v")

    response = alice.browser.get(watch_url(bucket, "since=0&wait=0"))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    body = response.content.decode()
    assert body.startswith(": watching\nid: 0\n")
    assert 'event: put\ndata: {"key": "k", "value": "v"' in body


def test_a_watch_of_the_page_counts_no_api_request(alice, bucket):
    before = alice.client.get(f"/v1/{bucket}")["X-RateLimit-Remaining"]

    for _ in range(3):
        response = alice.browser.get(watch_url(bucket, "format=json&wait=0"))
        assert response.status_code == 200

    after = alice.client.get(f"/v1/{bucket}")["X-RateLimit-Remaining"]
    assert int(before) - int(after) == 1  # the second listing alone


def test_past_the_plans_open_watches_the_page_is_told_to_wait(alice, bucket, settings):
    account = alice.user.account
    account.max_watches = 0
    account.save()

    response = alice.browser.get(watch_url(bucket, "format=json&wait=0"))

    assert response.status_code == 429
    assert "too many open watches" in response.content.decode().lower()
    assert int(response["Retry-After"]) > 0


def test_behind_the_front_the_page_gives_its_script_the_watch_from_where_it_read(alice, bucket):
    alice.set(bucket, "k", "v")
    head = history.head(bucket)

    page = alice.browser.get(f"/buckets/{bucket}/?prefix=k", **BEHIND_THE_FRONT).content.decode()

    assert 'id="live"' in page
    assert f'data-watch="/buckets/{bucket}/watch/?prefix=k&amp;since={head}"' in page
    assert "js/live.js" in page
    assert 'id="live-notice"' in page


def test_without_the_front_the_page_opens_no_stream(alice, bucket):
    alice.set(bucket, "k", "v")

    page = alice.browser.get(f"/buckets/{bucket}/").content.decode()

    assert 'id="live"' not in page
    assert "js/live.js" not in page
    assert 'data-ref="' in page  # the list is the same


@pytest.mark.parametrize("value, shown", [(b"41", False), (b"text", True)])
def test_every_row_has_its_plus_one_hidden_unless_its_value_is_a_number(
    alice, bucket, value, shown
):
    alice.set(bucket, "k", value)

    page = alice.browser.get(f"/buckets/{bucket}/").content.decode()

    form = page[page.index('class="inline increment"') :].split(">", 1)[0]
    assert (" hidden" in form) is shown
