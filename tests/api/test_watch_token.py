"""A token in the query string (token=): taken on a watch only (GET /v1/<bucket>?watch=true),
which a browser's EventSource opens without headers; anywhere else it means nothing, and it
never stays in the request for a log to show.

Under the test client (no front), a watch answers long-polls (format=json): with since=0 at
once with the changes the history holds, and with wait=0 at once, empty."""

import json
import logging

import pytest
from django.test import Client

from api import authentication, history

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def token(alice, bucket):
    return alice.token(bucket, "user:", "read")


def watch(client: Client, bucket: str, query: str, **headers):
    return client.get(f"/v1/{bucket}?watch=true&format=json&{query}", headers=headers)


def test_a_watch_takes_its_token_from_the_query_string(alice, bucket, token):
    history.start_watching(bucket)  # its changes are recorded from here (position 0)
    alice.set(bucket, "user:1", "one")
    alice.set(bucket, "other", "not covered")

    response = watch(Client(), bucket, f"since=0&token={token}")

    assert response.status_code == 200, response.content
    events = json.loads(response.content)["events"]
    assert [(e["type"], e["key"], e["value"]) for e in events] == [("put", "user:1", "one")]


def test_the_token_is_taken_wherever_it_sits_in_the_query_and_with_watch_spelled_yes(
    alice, bucket, token
):
    history.start_watching(bucket)
    alice.set(bucket, "user:2", "two")

    response = Client().get(f"/v1/{bucket}?token={token}&since=0&format=json&watch=yes")

    assert response.status_code == 200, response.content
    assert [e["key"] for e in json.loads(response.content)["events"]] == ["user:2"]


def test_a_wrong_token_in_the_query_string_is_403(bucket):
    response = watch(Client(), bucket, "token=" + "x" * 40)

    assert response.status_code == 403
    assert "invalid or expired token" in response.content.decode()


def test_an_empty_token_in_the_query_string_is_403(bucket):
    assert watch(Client(), bucket, "token=").status_code == 403


def test_a_token_for_another_bucket_is_refused_in_the_query_string_too(alice, bucket, token):
    other = alice.new_bucket()

    response = watch(Client(), other, f"token={token}")

    assert response.status_code == 403
    assert "another bucket" in response.content.decode()


def test_a_write_only_token_cannot_watch_from_the_query_string(alice, bucket):
    write_only = alice.token(bucket, "", "write")

    response = watch(Client(), bucket, f"token={write_only}")

    assert response.status_code == 403
    assert "no read permission" in response.content.decode()


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/v1/{bucket}?token={token}"),  # a listing
        ("GET", "/v1/{bucket}?values=true&token={token}"),
        ("GET", "/v1/{bucket}?watch=false&token={token}"),
        ("GET", "/v1/{bucket}/user:1?token={token}"),  # a key, even with watch=true
        ("GET", "/v1/{bucket}/user:1?watch=true&token={token}"),
        ("HEAD", "/v1/{bucket}?watch=true&format=json&wait=0&token={token}"),
        ("POST", "/v1/{bucket}/user:1?watch=true&token={token}"),
        ("DELETE", "/v1/{bucket}/user:1?watch=true&token={token}"),
        ("POST", "/v1/{bucket}?watch=true&token={token}"),
    ],
)
def test_anywhere_but_a_watch_a_token_in_the_query_string_is_ignored(
    alice, bucket, token, method, path
):
    alice.set(bucket, "user:1", "one")
    url = path.format(bucket=bucket, token=token)

    response = Client().generic(method, url, b"v", content_type=FORM)

    assert response.status_code == 403, (url, response.content)
    if method != "HEAD":
        assert "X-Api-Key" in response.content.decode()  # no credentials: the header's help
    assert alice.client.get(f"/v1/{bucket}/user:1").content == b"one"  # nothing written


def test_a_header_wins_over_the_query_string(alice, bucket, token):
    response = watch(Client(), bucket, f"wait=0&token={token}", **{"X-Token": "y" * 40})
    assert response.status_code == 403  # the header's wrong token, not the query's right one

    response = watch(alice.client, bucket, "wait=0&token=" + "z" * 40)
    assert response.status_code == 200  # the API key, with a wrong token beside it: ignored


def test_a_query_token_is_taken_out_of_the_request_before_anything_can_log_it(bucket, caplog):
    wrong = "w" * 40

    with caplog.at_level(logging.DEBUG):
        refused = watch(Client(), bucket, f"token={wrong}&prefix=user%3A")

    assert refused.status_code == 403
    logged = [r for r in caplog.records if r.name == "django.request"]
    assert logged, "Django logs the 403, with the request"
    for record in logged:
        assert wrong not in record.getMessage()
        request = record.request  # what a log formatter or an error report may show
        assert wrong not in request.get_full_path()
        assert wrong not in request.META["QUERY_STRING"]
        assert "token" not in request.GET
        assert request.GET["prefix"] == "user:"


def test_a_watch_from_another_origin_is_answered_for_any_origin(alice, bucket, token):
    response = Client().get(
        f"/v1/{bucket}?watch=true&format=json&wait=0&token={token}",
        headers={"Origin": "http://app.example"},
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response


def test_a_preflight_may_send_last_event_id(bucket):
    response = Client().options(
        f"/v1/{bucket}?watch=true",
        headers={
            "Origin": "http://app.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "last-event-id",
        },
    )

    assert response.status_code == 200
    assert "last-event-id" in response["Access-Control-Allow-Headers"]


def test_query_token_leaves_the_rest_of_the_query_as_it_was(alice, bucket, token, rf):
    from rest_framework.request import Request

    django_request = rf.get(f"/v1/{bucket}?prefix=a%2Bb+c&watch=1&token={token}&since=7")

    class View:
        watch_action = action = "retrieve"

    request = Request(django_request, parser_context={"view": View()})
    assert authentication.query_token(request) == token
    assert django_request.META["QUERY_STRING"] == "prefix=a%2Bb+c&watch=1&since=7"
    assert dict(django_request.GET.items()) == {"prefix": "a+b c", "watch": "1", "since": "7"}
