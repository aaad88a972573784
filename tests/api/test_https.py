"""The https settings on /v1/ (thisdb_site.middleware.ApiMiddleware): with SECURE_SSL_REDIRECT a
request over plain http is refused in the API's formats, never redirected; with
SECURE_HSTS_SECONDS an answer over https carries Strict-Transport-Security, as the pages' do."""

import pytest
from django.test import Client, override_settings

from api.models import Item


def client_of(alice) -> Client:
    # A client made here builds its middleware under the settings the test overrides.
    return Client(headers={"X-Api-Key": alice.key})


@override_settings(SECURE_SSL_REDIRECT=True)
@pytest.mark.parametrize(
    "query, body",
    [
        ("", b"https required: "),
        ("?format=json", b'{"error":"https required: '),
    ],
)
def test_a_plain_http_request_is_refused_in_the_apis_format(alice, bucket, query, body):
    client = client_of(alice)
    response = client.post(f"/v1/{bucket}/k{query}", "v", content_type="text/plain")
    assert response.status_code == 403
    assert response.content.startswith(body)
    assert b"https://" in response.content
    assert "Location" not in response
    assert not Item.objects.filter(bucket_id=bucket).exists()


@override_settings(SECURE_SSL_REDIRECT=True)
def test_over_https_the_request_is_served(alice, bucket):
    client = client_of(alice)
    response = client.post(f"/v1/{bucket}/k", "v", content_type="text/plain", secure=True)
    assert response.status_code == 200
    assert client.get(f"/v1/{bucket}/k", secure=True).content == b"v"


@override_settings(SECURE_SSL_REDIRECT=True)
def test_the_pages_are_still_redirected(db):
    response = Client().get("/docs/")
    assert response.status_code == 301
    assert response["Location"].startswith("https://")


@override_settings(SECURE_HSTS_SECONDS=3600, SECURE_HSTS_INCLUDE_SUBDOMAINS=True)
def test_answers_over_https_carry_hsts_like_the_pages(alice, bucket):
    client = client_of(alice)
    api = client.get(f"/v1/{bucket}/nothing", secure=True)
    page = Client().get("/docs/", secure=True)
    assert api.status_code == 404
    assert api["Strict-Transport-Security"] == "max-age=3600; includeSubDomains"
    assert api["Strict-Transport-Security"] == page["Strict-Transport-Security"]


@override_settings(SECURE_HSTS_SECONDS=3600)
def test_hsts_alone_neither_refuses_plain_http_nor_marks_it(alice, bucket):
    response = client_of(alice).get(f"/v1/{bucket}/nothing")
    assert response.status_code == 404
    assert "Strict-Transport-Security" not in response


def test_without_the_settings_plain_http_is_served_as_it_was(alice, bucket):
    response = alice.client.get(f"/v1/{bucket}/nothing")
    assert response.status_code == 404
    assert "Strict-Transport-Security" not in response
