"""What the client does without the platform: configuration errors, the network failing, and
answers the platform itself never gives (503, 500) from a stand-in HTTP server, as a proxy in
front of it may give them."""

import asyncio
import copy
import math
import multiprocessing
import pickle
import socket
import time
from concurrent.futures import ProcessPoolExecutor

import httpx
import pytest
import thisdb
import thisdb.errors
from stand_in import answering
from thisdb._core import RetryPolicy


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


# Errors cross processes: pickle and copy


def _every_error() -> list[thisdb.ThisDBError]:
    """One instance of every error class the package exports, each with its attributes set."""
    request = httpx.Request("GET", "http://127.0.0.1:9/v1/b/k")
    answer = httpx.Response(404, content=b"key not found", request=request)
    errors: list[thisdb.ThisDBError] = []
    for name in thisdb.__all__:
        cls = getattr(thisdb, name)
        if not (isinstance(cls, type) and issubclass(cls, thisdb.ThisDBError)):
            continue
        if issubclass(cls, thisdb.RateLimited | thisdb.Unavailable):
            errors.append(cls(429, "slow down", answer, retry_after=2.5))
        elif issubclass(cls, thisdb.ApiError):
            errors.append(cls(404, "key not found", answer))
        elif issubclass(cls, thisdb.UnexpectedResponse):
            errors.append(cls("not the API", answer))
        elif cls is thisdb.ImportStopped:
            errors.append(cls(thisdb.BadRequest(400, "line 3: bad", answer), 3, 2))
        else:
            errors.append(cls("went wrong"))
    return errors


def _same_error(copied: thisdb.ThisDBError, original: thisdb.ThisDBError) -> None:
    assert type(copied) is type(original)
    assert str(copied) == str(original) and copied.args == original.args
    assert copied.__dict__.keys() == original.__dict__.keys()
    for name, value in original.__dict__.items():
        if isinstance(value, thisdb.ThisDBError):  # the cause ImportStopped carries
            _same_error(copied.__dict__[name], value)
        elif isinstance(value, httpx.Response):
            kept = copied.__dict__[name]
            assert (kept.status_code, kept.content) == (value.status_code, value.content)
            assert kept.request.url == value.request.url
        else:
            assert copied.__dict__[name] == value, name


def test_every_error_pickles_and_copies_with_its_attributes():
    errors = _every_error()
    defined = {
        cls
        for cls in vars(thisdb.errors).values()
        if isinstance(cls, type) and issubclass(cls, thisdb.ThisDBError)
    }
    assert {type(error) for error in errors} == defined  # every one, and every one exported
    for error in errors:
        _same_error(pickle.loads(pickle.dumps(error)), error)
        _same_error(copy.copy(error), error)
        _same_error(copy.deepcopy(error), error)
    limited = pickle.loads(pickle.dumps(thisdb.RateLimited(429, "slow down", None, 2.5)))
    assert (limited.status, limited.message, limited.retry_after) == (429, "slow down", 2.5)


def _raise_not_found(url: str) -> None:
    with thisdb.Client("tdb_x", base_url=url) as client:
        client.get("b" * 20, "k")


def test_an_error_raised_in_a_process_pool_reaches_the_caller():
    """A worker process that raises one sends it back pickled: the pool must not break."""
    answers = [(404, {"Content-Type": "text/plain; charset=utf-8"}, b"key not found")]
    with answering(answers) as url:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
            future = pool.submit(_raise_not_found, url)
            with pytest.raises(thisdb.NotFound) as caught:
                future.result(timeout=60)
    assert (caught.value.status, caught.value.message) == (404, "key not found")
    assert caught.value.response.content == b"key not found"


# The secret stays in the client


SECRET = "tdb_" + "s3cr3t" * 6


def test_the_key_is_in_no_repr_and_not_on_the_request_an_error_keeps():
    answers = [(403, {"Content-Type": "text/plain"}, b"invalid API key")]
    seen_keys: list[str] = []
    with answering(answers, headers_seen=seen_keys) as url:
        with thisdb.Client(SECRET, base_url=url) as client:
            for shown in (repr(client), repr(client._settings), repr(vars(client))):
                assert SECRET not in shown
            assert SECRET not in repr(client._http.headers)
            with pytest.raises(thisdb.Forbidden) as caught:
                client.get("b" * 20, "k")
    assert seen_keys == [SECRET]  # it was sent
    request = caught.value.response.request
    assert "x-api-key" not in request.headers
    assert request.url == f"{url}/v1/{'b' * 20}/k"
    assert SECRET.encode() not in pickle.dumps(caught.value)

    with thisdb.Client(token=SECRET, base_url="http://127.0.0.1:9") as client:
        assert SECRET not in repr(vars(client))
        with pytest.raises(thisdb.NetworkError) as refused:
            client.get("b" * 20, "k")
    assert "x-token" not in refused.value.__cause__.request.headers


def test_the_async_client_keeps_the_key_off_its_errors():
    answers = [(404, {"Content-Type": "text/plain"}, b"key not found")]

    async def main():
        async with thisdb.AsyncClient(SECRET, base_url=url) as client:
            assert SECRET not in repr(vars(client))
            await client.get("b" * 20, "k")

    with answering(answers) as url:
        with pytest.raises(thisdb.NotFound) as caught:
            asyncio.run(main())
    assert "x-api-key" not in caught.value.response.request.headers


# Answers that are not the API's


HTML = {"Content-Type": "text/html; charset=utf-8"}


def test_an_answer_that_is_not_the_apis_is_a_configuration_error():
    """A proxy's page, a login portal or another site's 404 is never a value and never
    NotFound: the API answers 2xx and 4xx in text/plain, application/json or ndjson."""
    answers = [
        (200, HTML, b"<html><title>Sign in to the proxy</title></html>"),
        (404, HTML, b"<html><h1>Not Found</h1></html>"),
        (200, {}, b"no type at all"),
        (301, {"Location": "https://127.0.0.1/v1/b/k"}, b""),
        (429, HTML, b"<html>slow down</html>"),  # a proxy may limit for the API
        (502, HTML, b"<html>bad gateway</html>"),
        (200, {"Content-Type": "text/plain; charset=utf-8"}, b"the value"),
    ]
    with answering(answers) as url:
        with thisdb.Client("tdb_x", base_url=url) as client:
            with pytest.raises(thisdb.NotTheAPI, match="200 OK in text/html, not like a ThisDB"):
                client.get("b" * 20, "k")
            with pytest.raises(thisdb.NotTheAPI, match="check the base URL") as caught:
                client.get("b" * 20, "k")
            assert not isinstance(caught.value, thisdb.ApiError)
            assert isinstance(caught.value, thisdb.ConfigurationError)
            assert caught.value.response.status_code == 404
            with pytest.raises(thisdb.NotTheAPI, match="in no Content-Type"):
                client.get("b" * 20, "k")
            with pytest.raises(thisdb.NotTheAPI, match="answered 301 .to https://127.0.0.1"):
                client.get("b" * 20, "k")
            with pytest.raises(thisdb.RateLimited):
                client.get("b" * 20, "k")
            with pytest.raises(thisdb.ServerError):
                client.get("b" * 20, "k")
            assert client.get("b" * 20, "k") == b"the value"


# Smaller things


def test_a_timeout_says_which_wait_ran_out_once():
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with thisdb.Client("tdb_x", base_url=url, timeout=0.3) as client:
            with pytest.raises(thisdb.NetworkError) as caught:
                client.get("b" * 20, "k")

        async def main():
            async with thisdb.AsyncClient("tdb_x", base_url=url, timeout=0.3) as client:
                await client.get("b" * 20, "k")

        with pytest.raises(thisdb.NetworkError) as caught_async:
            asyncio.run(main())
    expected = f"GET {url}/v1/{'b' * 20}/k: timed out: no answer within 0.3 s"
    assert str(caught.value) == expected
    assert str(caught_async.value) == expected


def test_json_that_is_not_json_is_refused_as_a_thisdb_error():
    seen: list[tuple[str, str]] = []
    answers = [(200, {"Content-Type": "text/plain"}, b"{not json")]
    with answering(answers, seen) as url:
        with thisdb.Client("tdb_x", base_url=url) as client:
            for number in (float("nan"), float("inf"), -float("inf")):
                with pytest.raises(thisdb.InvalidArgument, match="cannot store this as JSON"):
                    client.set_json("b" * 20, "k", {"n": number})
            assert seen == []  # nothing was sent
            with pytest.raises(thisdb.NotJSON, match="the value is not JSON") as caught:
                client.get_json("b" * 20, "k")
    assert isinstance(caught.value, ValueError)
    with pytest.raises(thisdb.InvalidArgument):
        asyncio.run(thisdb.AsyncClient("tdb_x", base_url=url).set_json("b" * 20, "k", math.nan))


def test_a_closed_client_says_so():
    client = thisdb.Client("tdb_x", base_url="http://127.0.0.1:9")
    client.close()
    with pytest.raises(thisdb.ClientClosed, match="the client is closed"):
        client.get("b" * 20, "k")

    async def main():
        async with thisdb.AsyncClient("tdb_x", base_url="http://127.0.0.1:9") as db:
            pass
        await db.create_bucket()

    with pytest.raises(thisdb.ClientClosed):
        asyncio.run(main())


def test_retries_and_timeouts_out_of_range_are_refused():
    url = "http://127.0.0.1:9"
    refused = [
        ({"retries": -1}, "retries must be 0 .no retries. or more, not -1"),
        ({"retries": 1.5}, "retries must be a whole number"),
        ({"max_retry_wait": -1}, "max_retry_wait must be a number of seconds >= 0"),
        ({"timeout": 0}, "timeout must be a number of seconds > 0"),
        ({"timeout": -2.5}, "timeout must be a number of seconds > 0"),
        ({"timeout": math.nan}, "timeout must be a number of seconds > 0"),
    ]
    for arguments, message in refused:
        with pytest.raises(thisdb.ConfigurationError, match=message):
            thisdb.Client("tdb_x", base_url=url, **arguments)
        with pytest.raises(thisdb.ConfigurationError, match=message):
            thisdb.AsyncClient("tdb_x", base_url=url, **arguments)
    thisdb.Client("tdb_x", base_url=url, retries=0, timeout=0.01, max_retry_wait=0).close()


def test_retry_waits_are_spread_by_jitter():
    """Clients refused together come back at different instants: the wait Retry-After asks
    for plus up to a quarter more (at most 1 s), or half to all of the backoff step."""
    policy = RetryPolicy(retries=3, max_wait=60)
    request = httpx.Request("GET", "http://127.0.0.1:9/v1/b/k")
    asked = httpx.Response(429, headers={"Retry-After": "2"}, request=request)
    unsaid = httpx.Response(503, request=request)
    after = [policy.delay(asked, 0) for _ in range(200)]
    backoff = [policy.delay(unsaid, 2) for _ in range(200)]
    assert all(2 <= wait <= 2.5 for wait in after)
    assert all(1 <= wait <= 2 for wait in backoff)  # the third step: 2 s, jittered
    assert len(set(after)) > 100 and len(set(backoff)) > 100
    assert max(after) - min(after) > 0.25 and max(backoff) - min(backoff) > 0.5
    assert policy.delay(asked, 3) is None  # retries spent
