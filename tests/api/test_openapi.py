"""What the OpenAPI schema at /api/schema/ says: how to authenticate, every status of each
operation in the three formats, the response headers, and the ranges of every input.
(tests/api/test_schemathesis.py checks the running API against it.)"""

import re
from urllib.parse import quote

import pytest

FORMATS = {"text/plain", "application/json", "application/x-ndjson"}
OPERATIONS = {
    # operation id: (path, method, statuses)
    "create_bucket": ("/v1/", "post", {200, 400, 403, 406, 411, 413, 429, 503}),
    "list_keys": ("/v1/{bucket_id}", "get", {200, 400, 403, 404, 405, 406, 429, 503}),
    "update_bucket": (
        "/v1/{bucket_id}",
        "patch",
        {200, 400, 403, 404, 405, 406, 411, 413, 429, 503},
    ),
    "delete_bucket": ("/v1/{bucket_id}", "delete", {200, 403, 404, 405, 406, 429, 503}),
    "run_transaction": (
        "/v1/{bucket_id}",
        "post",
        {200, 400, 403, 404, 406, 409, 411, 413, 429, 503},
    ),
    "get_key": ("/v1/{bucket_id}/{key}", "get", {200, 304, 400, 403, 404, 406, 429, 503}),
    "set_key": (
        "/v1/{bucket_id}/{key}",
        "post",
        {200, 400, 403, 404, 406, 411, 412, 413, 429, 503},
    ),
    "put_key": (
        "/v1/{bucket_id}/{key}",
        "put",
        {200, 400, 403, 404, 406, 411, 412, 413, 429, 503},
    ),
    "increment_key": (
        "/v1/{bucket_id}/{key}",
        "patch",
        {200, 400, 403, 404, 406, 411, 412, 413, 429, 503},
    ),
    "delete_key": ("/v1/{bucket_id}/{key}", "delete", {200, 400, 403, 404, 406, 412, 429, 503}),
    "create_token": ("/v1/tokens", "post", {200, 400, 403, 404, 406, 411, 413, 429, 503}),
}
API_KEY_ONLY = {"create_bucket", "update_bucket", "delete_bucket", "create_token"}


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from django.test import Client

    with django_db_blocker.unblock():
        response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def operation(schema, operation_id: str) -> dict:
    path, method, _ = OPERATIONS[operation_id]
    found = schema["paths"][path][method]
    assert found["operationId"] == operation_id
    return found


def parameter(schema, operation_id: str, name: str) -> dict:
    [found] = [p for p in operation(schema, operation_id)["parameters"] if p["name"] == name]
    return found


def test_either_header_authenticates(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {**schemes["ApiKey"], "in": "header", "name": "X-Api-Key"}
    assert schemes["Token"] == {**schemes["Token"], "in": "header", "name": "X-Token"}
    for operation_id in OPERATIONS:
        security = operation(schema, operation_id)["security"]
        if operation_id in API_KEY_ONLY:
            assert security == [{"ApiKey": []}], operation_id
        else:
            # Two requirement objects: one or the other, never both at once.
            assert security == [{"ApiKey": []}, {"Token": []}], operation_id


@pytest.mark.parametrize("operation_id", OPERATIONS)
def test_every_status_in_every_format(schema, operation_id):
    responses = operation(schema, operation_id)["responses"]
    assert {int(status) for status in responses} == OPERATIONS[operation_id][2]
    for status, response in responses.items():
        headers = response["headers"]
        if status == "304":  # no body; the ETag says which version is current
            assert "content" not in response and "ETag" in headers
            continue
        formats = set(response["content"])
        if operation_id == "list_keys" and status == "200":
            # watch=true: a stream of Server-Sent Events, or a long-poll's document (in JSON)
            assert formats == FORMATS | {"text/event-stream"}, formats
            assert response["content"]["application/json"]["schema"] == {
                "oneOf": [
                    {"$ref": "#/components/schemas/KeyList"},
                    {"$ref": "#/components/schemas/WatchAnswer"},
                ]
            }
            continue
        assert formats == FORMATS, (operation_id, status)
        json_schema = response["content"]["application/json"]["schema"]
        if status == "409":  # a transaction's conflict is a document of its own
            assert json_schema == {"$ref": "#/components/schemas/TransactionConflict"}
        elif status != "200":
            assert json_schema == {"$ref": "#/components/schemas/Error"}
        assert ("ETag" in headers) == (
            operation_id.endswith("_key")
            and status in ("200", "412")
            and operation_id != "delete_key"
            or operation_id == "delete_key"
            and status == "412"
        ), (operation_id, status)
        assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(headers)
        assert ("Retry-After" in headers) == (status in ("429", "503"))
        if status == "429":
            assert headers["Retry-After"]["required"] is True


@pytest.mark.parametrize(
    "operation_id, component",
    [
        ("create_bucket", "NewBucket"),
        ("update_bucket", "Result"),
        ("delete_bucket", "Result"),
        ("get_key", "Value"),
        ("set_key", "Result"),
        ("increment_key", "Counter"),
        ("delete_key", "Result"),
        ("create_token", "NewToken"),
    ],
)
def test_the_json_shapes(schema, operation_id, component):
    ok = operation(schema, operation_id)["responses"]["200"]["content"]["application/json"]
    assert ok["schema"] == {"$ref": f"#/components/schemas/{component}"}
    shapes = schema["components"]["schemas"]
    assert shapes["Error"]["required"] == ["error"]
    assert shapes["Value"]["properties"]["encoding"]["enum"] == ["base64"]
    assert shapes["Counter"]["properties"]["value"]["type"] == "integer"
    assert shapes["KeyList"]["properties"]["next_cursor"]["nullable"] is True


def test_a_list_page_says_where_the_next_begins(schema):
    headers = operation(schema, "list_keys")["responses"]["200"]["headers"]
    assert headers["X-Next-Cursor"] == {"$ref": "#/components/headers/X-Next-Cursor"}
    cursor = parameter(schema, "list_keys", "cursor")["schema"]
    assert schema["components"]["headers"]["X-Next-Cursor"]["schema"] == cursor


def test_the_cursor_pattern_takes_every_cursor_the_api_gives_and_no_other(schema, alice, bucket):
    cursor = parameter(schema, "list_keys", "cursor")["schema"]
    [bucket_cursor] = [
        p for p in schema["paths"]["/v1/"]["get"]["parameters"] if p["name"] == "cursor"
    ]
    assert bucket_cursor["schema"] == cursor

    def described(text: str) -> bool:
        length_ok = cursor["minLength"] <= len(text) <= cursor["maxLength"]
        return length_ok and re.search(cursor["pattern"], text) is not None

    keys = ["a", "ab", "abc", "abcd", "\u00e9", "\U0001f600" * 128, "k" * 512]
    for key in keys:
        assert alice.set(bucket, quote(key), "v").status_code == 200
    given, page = [], alice.client.get(f"/v1/{bucket}?limit=1")
    while "X-Next-Cursor" in page:
        given.append(page["X-Next-Cursor"])
        page = alice.client.get(f"/v1/{bucket}?limit=1&cursor={given[-1]}")
    assert len(given) == len(keys) - 1
    assert all(described(c) for c in given), [c for c in given if not described(c)]

    for refused in ["0", "A", "abcde", "a+b/", "YQ==", "YWJj" * 171]:
        response = alice.client.get(f"/v1/{bucket}?cursor={quote(refused)}")
        assert response.status_code == 400, refused
        assert not described(refused), refused


def test_the_ranges_of_the_inputs(schema):
    limit = parameter(schema, "list_keys", "limit")["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 1000, 1000)
    assert parameter(schema, "list_keys", "values")["schema"]["type"] == "boolean"
    fmt = parameter(schema, "get_key", "format")
    assert set(fmt["schema"]["enum"]) == {"text", "json", "ndjson"}
    assert fmt["allowEmptyValue"] is True
    for operation_id in ("set_key", "put_key", "increment_key"):
        ttl = parameter(schema, operation_id, "ttl")["schema"]
        assert (ttl["minimum"], ttl["maximum"]) == (0, 315360000)
    for operation_id in ("create_bucket", "update_bucket"):
        form = operation(schema, operation_id)["requestBody"]["content"]
        default_ttl = form["application/x-www-form-urlencoded"]["schema"]["properties"]
        assert (default_ttl["default_ttl"]["minimum"], default_ttl["default_ttl"]["maximum"]) == (
            0,
            315360000,
        )
    token = operation(schema, "create_token")["requestBody"]
    assert token["required"] is True
    fields = token["content"]["application/x-www-form-urlencoded"]["schema"]
    assert fields["required"] == ["bucket", "prefix", "permissions", "ttl"]
    assert (fields["properties"]["ttl"]["minimum"], fields["properties"]["ttl"]["maximum"]) == (
        1,
        86400,
    )
    assert fields["properties"]["permissions"]["pattern"] == "^(read|write)(,(read|write))*$"
    increment = operation(schema, "increment_key")["requestBody"]
    assert increment["required"] is True
    assert increment["content"]["text/plain"]["schema"]["pattern"] == "^[+-]?[0-9]+$"
    key = parameter(schema, "get_key", "key")["schema"]
    assert (key["minLength"], key["maxLength"]) == (1, 512)
