"""Routing of /v1/, /v1/tokens, /v1/<bucket> and /v1/<bucket>/<key>: with or without a trailing
slash and never redirected; no CSRF for the API; CORS for browsers; the OpenAPI schema at
/api/schema/ and its Swagger UI at /api/docs/, served from local static files only."""

import re

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.views import serve as serve_static
from django.test import Client, RequestFactory

from api.models import Bucket, Token

FORM = "application/x-www-form-urlencoded"
ORIGIN = "https://app.example.com"
BUCKET_ID = re.compile(r"[A-Za-z0-9]{20}")


def bucket_ids(persona) -> set[str]:
    return set(Bucket.objects.filter(owner=persona.user).values_list("id", flat=True))


# Trailing slashes, no redirects


@pytest.mark.parametrize("path", ["/v1", "/v1/"])
def test_post_creates_a_bucket_with_or_without_the_slash(alice, path):
    response = alice.client.post(path, "default_ttl=77", content_type=FORM)

    assert response.status_code == 200
    assert BUCKET_ID.fullmatch(response.content.decode())
    assert Bucket.objects.get(pk=response.content.decode()).default_ttl == 77


@pytest.mark.parametrize("slash", ["", "/"])
def test_list_with_or_without_the_slash(alice, bucket, slash):
    alice.set(bucket, "foo", "x")
    response = alice.client.get(f"/v1/{bucket}{slash}")
    assert response.status_code == 200
    assert response.content == b"foo"


@pytest.mark.parametrize("slash", ["", "/"])
def test_patch_with_or_without_the_slash(alice, bucket, slash):
    response = alice.client.patch(f"/v1/{bucket}{slash}", "default_ttl=33", content_type=FORM)
    assert response.status_code == 200
    assert Bucket.objects.get(pk=bucket).default_ttl == 33  # the body was not lost


@pytest.mark.parametrize("slash", ["", "/"])
def test_delete_with_or_without_the_slash(alice, bucket, slash):
    response = alice.client.delete(f"/v1/{bucket}{slash}")
    assert response.status_code == 200
    assert not Bucket.objects.filter(pk=bucket).exists()


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/v1/{b}"),
        ("GET", "/v1/{b}/"),
        ("PATCH", "/v1/{b}"),
        ("PATCH", "/v1/{b}/"),
        ("POST", "/v1"),
        ("POST", "/v1/"),
        ("POST", "/v1/tokens"),
        ("POST", "/v1/tokens/"),
        ("GET", "/v1/{b}/foo"),
        ("DELETE", "/v1/{b}/"),
    ],
)
def test_no_route_answers_with_a_redirect(alice, bucket, method, path):
    alice.set(bucket, "foo", "x")
    body = f"bucket={bucket}&prefix=&permissions=read&ttl=60"
    response = alice.client.generic(method, path.format(b=bucket), body, content_type=FORM)
    assert response.status_code == 200, response.content
    assert "Location" not in response


def test_a_trailing_slash_after_a_key_is_part_of_the_key(alice, bucket):
    alice.set(bucket, "dir/", "slash")
    alice.set(bucket, "dir", "plain")
    assert alice.client.get(f"/v1/{bucket}/dir/").content == b"slash"
    assert alice.client.get(f"/v1/{bucket}/dir").content == b"plain"


# /v1/tokens is not a bucket


@pytest.mark.parametrize("path", ["/v1/tokens", "/v1/tokens/"])
def test_tokens_route_creates_a_token(alice, bucket, path):
    body = f"bucket={bucket}&prefix=p:&permissions=read&ttl=60"
    response = alice.client.post(path, body, content_type=FORM)

    assert response.status_code == 200
    assert re.fullmatch(r"[a-z0-9]{40}", response.content.decode())
    assert Token.objects.get(bucket_id=bucket).prefix == "p:"


@pytest.mark.parametrize("path", ["/v1/tokens", "/v1/tokens/"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_tokens_is_not_taken_as_a_bucket(alice, path, method):
    response = alice.client.generic(method, path, "", content_type=FORM)
    assert response.status_code == 405  # the tokens route, not "bucket not found"
    assert "POST" in response["Allow"]


# CSRF


def test_csrf_checks_do_not_apply_to_the_api(alice):
    client = Client(enforce_csrf_checks=True, headers={"X-Api-Key": alice.key})

    response = client.post("/v1/", "", content_type=FORM)
    assert response.status_code == 200, response.content
    bucket = response.content.decode()

    assert client.post(f"/v1/{bucket}/foo", "bar", content_type=FORM).status_code == 200
    response = client.patch(f"/v1/{bucket}", "default_ttl=5", content_type=FORM)
    assert response.status_code == 200
    response = client.post(
        "/v1/tokens", f"bucket={bucket}&prefix=&permissions=read&ttl=5", content_type=FORM
    )
    assert response.status_code == 200
    assert client.delete(f"/v1/{bucket}/foo").status_code == 200
    assert client.delete(f"/v1/{bucket}").status_code == 200
    assert bucket_ids(alice) == set()


def test_csrf_checks_do_not_apply_to_a_token(alice, bucket):
    client = Client(enforce_csrf_checks=True, headers={"X-Token": alice.token(bucket, "")})
    assert client.post(f"/v1/{bucket}/foo", "bar", content_type=FORM).status_code == 200


def test_the_api_sets_no_cookies(alice, bucket):
    response = alice.client.get(f"/v1/{bucket}")
    assert not response.cookies


# CORS


@pytest.mark.parametrize("path", ["/v1/{b}/some/key", "/v1/{b}", "/v1/", "/v1/tokens"])
def test_cors_preflight_allows_the_api_headers(bucket, client, path):
    response = client.options(
        path.format(b=bucket),
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "x-api-key,x-token,content-type",
        },
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] in ("*", ORIGIN)
    allowed = {h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"x-api-key", "x-token", "content-type"} <= allowed
    methods = {m.strip() for m in response["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= methods


def test_cors_headers_on_a_normal_request(alice, bucket):
    alice.set(bucket, "a", "x")
    alice.set(bucket, "b", "x")

    response = alice.client.get(f"/v1/{bucket}?limit=1", headers={"Origin": ORIGIN})

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] in ("*", ORIGIN)
    exposed = {h.strip().lower() for h in response["Access-Control-Expose-Headers"].split(",")}
    assert {"x-next-cursor", "retry-after"} <= exposed
    assert response["X-Next-Cursor"]


def test_cors_headers_on_an_error(client, bucket):
    response = client.get(f"/v1/{bucket}", headers={"Origin": ORIGIN})
    assert response.status_code == 403
    assert response["Access-Control-Allow-Origin"] in ("*", ORIGIN)


def test_cors_is_only_for_the_api(db, client):
    response = client.get("/", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in response


# OpenAPI schema and docs


def test_the_schema_lists_the_v1_paths(db, client):
    response = client.get("/api/schema/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    text = response.content.decode()
    for path in ["/v1/:", "/v1/{bucket_id}:", "/v1/{bucket_id}/{key}:", "/v1/tokens:"]:
        assert f"\n  {path}\n" in text, path


def test_the_schema_in_json(db, client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/v1/", "/v1/{bucket_id}", "/v1/{bucket_id}/{key}", "/v1/tokens"} <= set(paths)
    assert {"get", "post", "put", "patch", "delete"} <= set(paths["/v1/{bucket_id}/{key}"])
    assert "post" in paths["/v1/tokens"]


def asset_urls(html: str) -> list[str]:
    """The src of every <script> and the href of every <link> of a page."""
    tags = re.findall(r"<(?:script|link)\b[^>]*>", html, re.IGNORECASE)
    return [
        m.group(2)
        for tag in tags
        if (m := re.search(r"""\b(src|href)\s*=\s*["']([^"']*)["']""", tag, re.IGNORECASE))
    ]


def test_the_docs_page_uses_only_local_assets(db, client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    urls = asset_urls(html)
    assert any(u.endswith("swagger-ui-bundle.js") for u in urls)
    for url in urls:
        assert not re.match(r"(?i)(https?:)?//", url), url
        # Static assets, and the page's own start-up script (no inline script under the CSP).
        assert url.startswith((settings.STATIC_URL, "/api/docs/?script")), url
    assert not re.search(r"(?i)<(script|link)\b[^>]*(https?:)?//", html)
    assert "/api/schema/" in client.get("/api/docs/?script=").content.decode()
    assert not re.search(r"(?i)<script(?![^>]*\bsrc=)[^>]*>", html)  # no inline script


def test_the_swagger_ui_assets_are_served_from_staticfiles(db, client):
    urls = asset_urls(client.get("/api/docs/").content.decode())
    local = [u for u in urls if u.endswith((".js", ".css"))]
    assert len(local) >= 3  # bundle, preset, stylesheet

    for url in local:
        relative = url.removeprefix(settings.STATIC_URL)
        assert finders.find(relative), url
        request = RequestFactory().get(url)
        response = serve_static(request, relative, insecure=True)
        assert response.status_code == 200, url
        assert b"".join(response.streaming_content)
        response.close()


def test_the_schema_declares_how_to_authenticate(client):
    schema = client.get("/api/schema/").content.decode()
    assert "securitySchemes" in schema
    assert "name: X-Api-Key" in schema
    assert "name: X-Token" in schema


def test_the_schema_documents_each_route_once(client):
    schema = client.get("/api/schema/").content.decode()
    for operation in (
        "create_bucket",
        "list_keys",
        "update_bucket",
        "delete_bucket",
        "get_key",
        "set_key",
        "increment_key",
        "delete_key",
        "create_token",
    ):
        assert schema.count(f"operationId: {operation}\n") == 1, operation


@pytest.mark.parametrize("path", ["/v1//x", "/v1//", "/v1///"])
def test_a_path_under_v1_that_names_nothing_is_the_apis_404(client, db, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.startswith(b"not found")
    response = client.get(path + "?format=json")
    assert response.json()["error"].startswith("not found")


# Methods (api.dispatch.ApiViewSet.as_view calls each route's actions by name)


@pytest.mark.parametrize(
    "path, allow",
    [
        ("/v1/{b}/k", "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"),
        ("/v1/{b}", "GET, POST, PATCH, DELETE, HEAD, OPTIONS"),
        ("/v1/", "GET, POST, HEAD, OPTIONS"),
        ("/v1/tokens", "POST, OPTIONS"),
    ],
)
@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "FOO"])
def test_a_method_a_route_has_no_action_for_is_405_with_the_routes_methods(
    alice, bucket, path, allow, method
):
    response = alice.client.generic(method, path.format(b=bucket))
    assert response.status_code == 405
    assert response["Allow"] == allow
    assert response.content == f'Method "{method}" not allowed.'.encode()


@pytest.mark.parametrize("path", ["/v1/{b}/k", "/v1/{b}", "/v1/"])
def test_head_is_get_without_the_body(alice, bucket, path):
    alice.set(bucket, "k", "value")
    get = alice.client.get(path.format(b=bucket))
    head = alice.client.head(path.format(b=bucket))
    assert get.status_code == head.status_code == 200
    assert get.content and not head.content
    assert head["Content-Type"] == get["Content-Type"]
    assert int(head["X-RateLimit-Remaining"]) == int(get["X-RateLimit-Remaining"]) - 1
