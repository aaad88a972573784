"""What api.dispatch takes from Django and DRF that they do not promise (its docstring lists
each): pinned here where no other test pins it by name."""

import logging

import pytest
from django.test import RequestFactory
from django.utils.log import log_response

from api.dispatch import ApiRequest, ApiViewSet, error_answer
from api.principals import Principal

UNKNOWN_PATH = "/v1/a/b/c"  # names no route: api.views.not_found answers


def test_direct_authentication_sets_what_request_user_gives(alice):
    """perform_authentication reads DRF's private Request._user after _authenticate()."""
    django_request = RequestFactory().get("/v1/", headers={"X-Api-Key": alice.key})
    request = ApiRequest(django_request, authenticators=ApiViewSet._authenticators)
    request._authenticate()
    assert isinstance(request._user, Principal)
    assert request.user is request._user
    assert request._user.user_id == alice.user.pk


@pytest.mark.parametrize(
    "headers, query, content_type",
    [
        # The first media type the API can produce, in the renderers' order (DRF's way): a
        # search for "application/json" in the header would have answered JSON.
        ({"Accept": "text/plain, application/json"}, "", "text/plain; charset=utf-8"),
        ({"Accept": "application/x-ndjson"}, "", "application/x-ndjson"),
        ({"Accept": "application/json"}, "?format=ndjson", "application/x-ndjson"),
    ],
)
def test_a_path_of_no_route_negotiates_as_the_routes_do(alice, headers, query, content_type):
    route = alice.client.get(f"/v1/AAAAAAAAAAAAAAAAAAAA/k{query}", headers=headers)
    nowhere = alice.client.get(UNKNOWN_PATH + query, headers=headers)
    assert route.status_code == nowhere.status_code == 404
    assert route["Content-Type"] == nowhere["Content-Type"] == content_type


@pytest.mark.parametrize("query, headers", [("?format=xml", {}), ("", {"Accept": "image/png"})])
def test_a_format_the_api_cannot_produce_is_the_same_406_everywhere(alice, query, headers):
    route = alice.client.get(f"/v1/AAAAAAAAAAAAAAAAAAAA/k{query}", headers=headers)
    nowhere = alice.client.get(UNKNOWN_PATH + query, headers=headers)
    assert route.status_code == nowhere.status_code == 406
    assert route.content == nowhere.content
    assert route["Content-Type"] == nowhere["Content-Type"] == "text/plain; charset=utf-8"


def test_an_outages_503_is_not_logged_again_by_django(caplog):
    """error_answer sets Django's private _has_been_logged on a 503 (the outage was reported
    once, thisdb_site.outages); Django's log_response must then stay silent."""
    request = RequestFactory().get("/v1/x/y?format=json")
    outage = error_answer(request, 503, "the database is unreachable", retry_after=5)
    failure = error_answer(request, 500, "internal error")
    assert outage["Retry-After"] == "5"
    with caplog.at_level(logging.ERROR, logger="django.request"):
        log_response("%s", "outage", response=outage, request=request)
        assert caplog.records == []
        log_response("%s", "failure", response=failure, request=request)
        assert len(caplog.records) == 1
