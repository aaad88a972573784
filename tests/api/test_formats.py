"""Response formats of every /v1/ endpoint: ?format=text|json|ndjson or the Accept header pick
text/plain, application/json or application/x-ndjson; anything else is a 406. Errors come in
the asked-for format too: the bare message, {"error": ...} or one NDJSON line."""

import json

import pytest

from tests.conftest import unversioned

FORM = "application/x-www-form-urlencoded"
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
NDJSON = "application/x-ndjson"
UNKNOWN_BUCKET = "AAAAAAAAAAAAAAAAAAAA"


@pytest.fixture
def filled(alice, bucket):
    alice.set(bucket, "foo", "bar")
    alice.set(bucket, "n", "5")
    return bucket


def ndjson_lines(response) -> list:
    text = response.content.decode()
    assert text.endswith("\n")
    return [json.loads(line) for line in text[:-1].split("\n")]


# Picking the format


@pytest.mark.parametrize(
    "query,headers,content_type",
    [
        ("", {}, TEXT),
        ("?format=text", {}, TEXT),
        ("?format=json", {}, JSON),
        ("?format=ndjson", {}, NDJSON),
        ("", {"Accept": "text/plain"}, TEXT),
        ("", {"Accept": "application/json"}, JSON),
        ("", {"Accept": "application/x-ndjson"}, NDJSON),
        ("", {"Accept": "*/*"}, TEXT),
        ("", {"Accept": "text/*"}, TEXT),
        ("", {"Accept": "application/xml, application/json;q=0.9"}, JSON),
        ("", {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, TEXT),
    ],
)
def test_the_format_is_picked_by_query_or_accept(alice, filled, query, headers, content_type):
    response = alice.client.get(f"/v1/{filled}/foo{query}", headers=headers)

    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    if content_type == TEXT:
        assert response.content == b"bar"
    elif content_type == JSON:
        assert response.json() == {"key": "foo", "value": "bar"}
    else:
        assert response.content == b'{"key":"foo","value":"bar"}\n'


def test_set_in_each_format(alice, bucket):
    url = f"/v1/{bucket}/foo"
    assert alice.client.post(url + "?format=text", "x", content_type=FORM).content == b"OK"
    assert alice.client.post(url + "?format=json", "x", content_type=FORM).json() == {
        "result": "OK"
    }
    response = alice.client.post(url + "?format=ndjson", "x", content_type=FORM)
    assert response["Content-Type"] == NDJSON
    assert response.content == b'{"result":"OK"}\n'


def test_the_format_does_not_change_the_stored_value(alice, bucket):
    alice.client.post(f"/v1/{bucket}/foo?format=json", '{"a": 1}', content_type=JSON)
    assert alice.client.get(f"/v1/{bucket}/foo").content == b'{"a": 1}'


def test_increment_in_each_format(alice, filled):
    url = f"/v1/{filled}/n"
    response = alice.client.patch(url, "+1", content_type="text/plain")
    assert (response["Content-Type"], response.content) == (TEXT, b"6")
    response = alice.client.patch(url + "?format=json", "+1", content_type="text/plain")
    assert response.json() == {"key": "n", "value": 7}
    response = alice.client.patch(url + "?format=ndjson", "+3", content_type="text/plain")
    assert ndjson_lines(response) == [{"key": "n", "value": 10}]


def test_a_negative_counter_in_json(alice, filled):
    response = alice.client.patch(f"/v1/{filled}/n?format=json", "-10", content_type="text/plain")
    assert response.status_code == 200, response.content
    assert response.json() == {"key": "n", "value": -5}


def test_create_bucket_and_token_in_each_format(alice, bucket):
    response = alice.client.post("/v1/", headers={"Accept": NDJSON})
    assert response["Content-Type"] == NDJSON
    [line] = ndjson_lines(response)
    assert set(line) == {"bucket"} and len(line["bucket"]) == 20

    body = f"bucket={bucket}&prefix=p&permissions=read&ttl=60"
    response = alice.client.post("/v1/tokens?format=json", body, content_type=FORM)
    assert response["Content-Type"] == JSON
    assert set(response.json()) == {"token"} and len(response.json()["token"]) == 40


def test_delete_and_patch_bucket_in_json(alice, filled):
    response = alice.client.patch(f"/v1/{filled}?format=json", "default_ttl=5", content_type=FORM)
    assert response.json() == {"result": "OK"}
    response = alice.client.delete(f"/v1/{filled}", headers={"Accept": JSON})
    assert response.json() == {"result": "OK"}


def test_list_in_each_format(alice, filled):
    assert alice.client.get(f"/v1/{filled}").content == b"foo\nn"
    response = alice.client.get(f"/v1/{filled}", headers={"Accept": JSON})
    assert unversioned(response.json()["items"]) == [{"key": "foo"}, {"key": "n"}]
    assert response.json()["next_cursor"] is None
    response = alice.client.get(f"/v1/{filled}", headers={"Accept": NDJSON})
    assert unversioned(ndjson_lines(response)) == [{"key": "foo"}, {"key": "n"}]


@pytest.mark.parametrize(
    "fmt,accept,content_type",
    [("text", JSON, TEXT), ("ndjson", JSON, NDJSON), ("json", "text/plain", JSON)],
)
def test_format_query_wins_over_the_accept_header(alice, filled, fmt, accept, content_type):
    # The JS SDK with defaultResponseFormat "json" sends Accept: application/json on every
    # request, and ?format= as well when a call names its own format.
    response = alice.client.get(f"/v1/{filled}?format={fmt}", headers={"Accept": accept})
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == content_type


# Unsupported formats


@pytest.mark.parametrize("fmt", ["xml", "html", "api", "csv", "JSON"])
def test_unsupported_format_is_406_not_404(alice, filled, fmt):
    response = alice.client.get(f"/v1/{filled}/foo?format={fmt}")

    assert response.status_code == 406
    assert response["Content-Type"] == TEXT
    assert response.content == f"format {fmt!r} is not supported: use text, json or ndjson".encode()


@pytest.mark.parametrize("accept", ["application/xml", "text/html", "image/png"])
def test_unacceptable_accept_is_406_with_a_helpful_message(alice, filled, accept):
    response = alice.client.get(f"/v1/{filled}/foo", headers={"Accept": accept})

    assert response.status_code == 406
    assert response["Content-Type"] == TEXT
    for hint in (b"text/plain", b"application/json", b"application/x-ndjson", b"?format="):
        assert hint in response.content


def test_unsupported_format_changes_nothing(alice, filled):
    response = alice.client.post(f"/v1/{filled}/foo?format=xml", "new", content_type=FORM)
    assert response.status_code == 406
    assert alice.client.get(f"/v1/{filled}/foo").content == b"bar"


@pytest.mark.parametrize(
    "method,path",
    [("POST", "/v1/"), ("GET", "/v1/{b}"), ("PATCH", "/v1/{b}"), ("POST", "/v1/tokens")],
)
def test_every_endpoint_refuses_an_unsupported_format_with_406(alice, filled, method, path):
    response = alice.client.generic(
        method, path.format(b=filled), "", content_type=FORM, headers={"Accept": "application/xml"}
    )
    assert response.status_code == 406
    assert response["Content-Type"] == TEXT


# Errors in every format


# name: (status, method, path after /v1/ with {b} for the bucket, body, extra headers)
ERRORS = {
    "400": (400, "GET", "{b}?limit=0", b"", {}),
    "403": (403, "GET", "{b}/foo", b"", {"X-Api-Key": "wrong"}),
    "404-bucket": (404, "GET", UNKNOWN_BUCKET + "/foo", b"", {}),
    "404-key": (404, "GET", "{b}/nope", b"", {}),
    "405": (405, "PUT", "{b}", b"", {}),
    "413": (413, "POST", "{b}/big", b"v" * (1024 * 1024 + 1), {}),
}
each_error = pytest.mark.parametrize("error", list(ERRORS))


def send_error(persona, bucket: str, error: str, fmt_query: str = "", headers=None):
    status, method, path, body, extra = ERRORS[error]
    url = "/v1/" + path.format(b=bucket)
    if fmt_query:
        url += ("&" if "?" in url else "?") + fmt_query
    response = persona.client.generic(
        method,
        url,
        body,
        content_type="application/octet-stream",
        headers={**extra, **(headers or {})},
    )
    assert response.status_code == status, response.content
    return response


@each_error
def test_errors_in_text_are_the_bare_message(alice, filled, error):
    response = send_error(alice, filled, error)
    assert response["Content-Type"] == TEXT
    message = response.content.decode()
    assert message and "\n" not in message and not message.startswith("{")


@each_error
@pytest.mark.parametrize("how", ["query", "accept"])
def test_errors_in_json_are_an_error_object(alice, filled, error, how):
    if how == "query":
        response = send_error(alice, filled, error, "format=json")
    else:
        response = send_error(alice, filled, error, "", {"Accept": JSON})
    assert response["Content-Type"] == JSON
    body = response.json()
    assert list(body) == ["error"]
    assert isinstance(body["error"], str) and body["error"]


@each_error
def test_errors_in_ndjson_are_one_line(alice, filled, error):
    response = send_error(alice, filled, error, "format=ndjson")
    assert response["Content-Type"] == NDJSON
    assert response.content.count(b"\n") == 1
    [line] = ndjson_lines(response)
    assert list(line) == ["error"] and line["error"]


@each_error
def test_the_message_is_the_same_in_every_format(alice, filled, error):
    text = send_error(alice, filled, error).content.decode()
    assert send_error(alice, filled, error, "format=json").json() == {"error": text}


def test_missing_credentials_in_json(bucket, client):
    response = client.get(f"/v1/{bucket}/foo?format=json")
    assert response.status_code == 403
    assert response["Content-Type"] == JSON
    assert "X-Api-Key" in response.json()["error"]


def test_quotes_in_a_message_survive_json(alice, bucket):
    response = alice.client.get(f"/v1/{bucket}?limit=%22x%22&format=json")
    assert response.status_code == 400
    assert response.json() == {"error": "limit must be a whole number from 1 to 1000, not '\"x\"'"}


def test_a_406_has_a_content_type_even_with_format_and_accept_both_bad(alice, filled):
    response = alice.client.get(
        f"/v1/{filled}/foo?format=xml", headers={"Accept": "application/xml"}
    )
    assert response.status_code == 406
    assert response["Content-Type"] == TEXT
    assert b"not supported" in response.content


def test_an_unknown_format_is_refused_before_the_bucket_lookup(alice, filled):
    response = alice.client.get(f"/v1/{UNKNOWN_BUCKET}?format=xml")
    assert response.status_code == 406  # the format is refused before the bucket is looked up
    assert response["Content-Type"] == TEXT


@pytest.mark.parametrize("header", [{"X-Api-Key": "nope"}, {"X-Token": "nope"}])
def test_an_unsupported_format_with_bad_credentials_is_406_not_500(bucket, client, header):
    response = client.get(f"/v1/{bucket}?format=xml", headers=header)
    assert response.status_code == 406
    response = client.get(f"/v1/{bucket}/k", headers={**header, "Accept": "image/png"})
    assert response.status_code == 406


@pytest.mark.parametrize(
    "query, content_type",
    [("", "text/plain; charset=utf-8"), ("?format=ndjson", "application/x-ndjson")],
)
def test_an_empty_answer_still_has_its_content_type(alice, bucket, query, content_type):
    response = alice.client.get(f"/v1/{bucket}{query}")  # an empty bucket: an empty body
    assert response.content == b""
    assert response["Content-Type"] == content_type

    alice.set(bucket, "empty", b"")
    response = alice.client.get(f"/v1/{bucket}/empty")
    assert response.content == b""
    assert response["Content-Type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("query", ["", "?format=json", "?format=ndjson"])
def test_the_apis_own_headers_are_what_djangos_checks_would_store(alice, filled, query):
    """The content type, Vary, nosniff and the rate-limit figures are stored without Django's
    header checks (api.renderers.ApiHeaders): each must come out of those checks unchanged."""
    from django.http.response import ResponseHeaders

    for response in (
        alice.client.get(f"/v1/{filled}/foo{query}"),
        alice.client.get(f"/v1/{filled}/nope{query}"),  # an error
        alice.set(filled, "foo", "baz", query=query),
    ):
        given = list(response.items())
        assert list(ResponseHeaders(dict(given)).items()) == given
        assert all(type(value) is str for _, value in given)
        names = {name for name, _ in given}
        assert {"Content-Type", "Vary", "X-Content-Type-Options", "X-RateLimit-Limit"} <= names
        assert "X-Request-Id" in names  # stored without the checks too (thisdb_site.requestlog)
        assert response.headers["x-ratelimit-remaining"] == response["X-RateLimit-Remaining"]
