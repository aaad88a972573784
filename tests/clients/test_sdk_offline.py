"""What the client does without the platform: configuration errors, the network failing, and
answers the platform itself never gives (503, 500) from a stand-in HTTP server, as a proxy in
front of it may give them."""

import socket
import time

import pytest
import thisdb

from tests.clients.conftest import answering


@pytest.fixture(autouse=True)
def _no_thisdb_env(monkeypatch):
    for name in ("THISDB_URL", "THISDB_API_KEY", "THISDB_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def test_configuration_errors():
    with pytest.raises(thisdb.ConfigurationError, match="no server"):
        thisdb.Client("tdb_x")
    with pytest.raises(thisdb.ConfigurationError, match="no credentials"):
        thisdb.Client(base_url="http://127.0.0.1:9")
    with pytest.raises(thisdb.ConfigurationError, match="not both"):
        thisdb.Client("tdb_x", token="t", base_url="http://127.0.0.1:9")
    with pytest.raises(thisdb.ConfigurationError, match="invalid server URL"):
        thisdb.Client("tdb_x", base_url="ftp://example.com")
    with pytest.raises(thisdb.ConfigurationError, match="invalid server URL"):
        thisdb.AsyncClient("tdb_x", base_url="127.0.0.1:8000")
    with pytest.raises(thisdb.ConfigurationError, match="the API key has characters"):
        thisdb.Client("tdb_é", base_url="http://127.0.0.1:9")
    assert isinstance(thisdb.ConfigurationError("x"), ValueError)


def test_empty_names_are_refused_before_any_request():
    with thisdb.Client("tdb_x", base_url="http://127.0.0.1:9") as client:
        with pytest.raises(ValueError, match="key cannot be empty"):
            client.get("b" * 20, "")  # /v1/<bucket>/ would list the bucket
        with pytest.raises(ValueError, match="bucket cannot be empty"):
            client.delete_bucket("")
        with pytest.raises(ValueError, match='path must start with "/"'):
            client.request("GET", "tokens")


def test_a_refused_connection_is_a_network_error():
    with thisdb.Client("tdb_x", base_url="http://127.0.0.1:9") as client:
        with pytest.raises(thisdb.NetworkError) as caught:
            client.create_bucket()
    assert str(caught.value).startswith("POST http://127.0.0.1:9/v1/: ")
    assert caught.value.__cause__ is not None
    assert not isinstance(caught.value, thisdb.ApiError)


def test_a_timeout_is_a_network_error():
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with thisdb.Client("tdb_x", base_url=url, timeout=0.3) as client:
            with pytest.raises(thisdb.NetworkError, match="timed out"):
                client.get("b" * 20, "k")


def test_503_is_retried_after_retry_after_then_raised_as_unavailable():
    answers = [
        (503, {"Retry-After": "1", "Content-Type": "text/plain"}, b"down for maintenance"),
        (200, {"Content-Type": "text/plain"}, b"value"),
        (503, {"Retry-After": "7"}, b"still down"),
        (500, {"Content-Type": "text/html"}, b"<html>oops</html>"),
        (302, {"Location": "https://elsewhere/v1/b/k"}, b""),
    ]
    with answering(answers) as url:
        with thisdb.Client("tdb_x", base_url=url, retries=1, max_retry_wait=5) as client:
            started = time.monotonic()
            assert client.get("b" * 20, "k") == b"value"
            assert time.monotonic() - started >= 1

            with pytest.raises(thisdb.Unavailable, match="still down") as caught:
                client.get("b" * 20, "k")  # Retry-After 7 > max_retry_wait: raised at once
            assert caught.value.retry_after == 7
            assert isinstance(caught.value, thisdb.ServerError)

            with pytest.raises(thisdb.ServerError) as caught:
                client.get("b" * 20, "k")
            assert str(caught.value) == "500 Internal Server Error: Internal Server Error"

            with pytest.raises(thisdb.UnexpectedResponse, match="302.*https://elsewhere"):
                client.get("b" * 20, "k")


def test_a_server_without_the_bucket_listing_answers_405():
    """GET /v1/ is an addition to the published v1 API; servers without it answer 405."""
    refused = (405, {"Allow": "POST", "Content-Type": "application/json"}, b'{"error": "no"}')
    seen: list[tuple[str, str]] = []
    with answering([refused, refused], seen) as url:
        with thisdb.Client("tdb_x", base_url=url) as client:
            with pytest.raises(thisdb.MethodNotAllowed) as caught:
                client.list_buckets(limit=10)
            assert caught.value.status == 405
            with pytest.raises(thisdb.MethodNotAllowed):
                list(client.iter_buckets())
    assert seen == [("GET", "/v1/?format=json&limit=10"), ("GET", "/v1/?format=json")]
