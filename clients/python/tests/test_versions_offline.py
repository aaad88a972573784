"""Versions, conditional writes and transactions in the client, against a stand-in server that
gives the answers of the API's spec: the headers and bodies the client sends, how it reads
ETags, 304, 412 and 409, and the JSON of a transaction."""

import asyncio
import base64
import json
import pickle

import pytest
import thisdb
from stand_in import Seen, answering

BUCKET = "B" * 20
TEXT = {"Content-Type": "text/plain; charset=utf-8"}
JSON = {"Content-Type": "application/json"}


def text(body: bytes, version: str | None = None, status: int = 200):
    headers = dict(TEXT)
    if version is not None:
        headers["ETag"] = f'"{version}"'
    return (status, headers, body)


@pytest.fixture(autouse=True)
def _no_thisdb_env(monkeypatch):
    for name in ("THISDB_URL", "THISDB_API_KEY", "THISDB_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def test_conditional_writes_send_if_match_or_if_none_match():
    answers = [text(b"OK", "2")] * 6 + [text(b"5", "3")] * 2 + [text(b"OK")] * 2
    sent: list[Seen] = []
    with answering(answers, requests=sent) as url:
        with thisdb.Client("tdb_x", base_url=url) as db:
            assert db.set(BUCKET, "k", "v", if_version="1") is None
            db.set(BUCKET, "k", b"v", ttl=60, if_version=["1", 7])
            db.set(BUCKET, "k", "v", if_absent=True)
            db.set(BUCKET, "k", "v", if_exists=True)
            db.set_json(BUCKET, "k", {"a": 1}, if_version=4)
            db.set(BUCKET, "k", "v")
            assert db.increment(BUCKET, "n", by=2, if_version="2") == 5
            assert db.increment(BUCKET, "n", if_absent=True) == 5
            db.delete(BUCKET, "k", if_version="9")
            db.delete(BUCKET, "k")

    conditions = [(r.headers.get("if-match"), r.headers.get("if-none-match")) for r in sent]
    assert conditions == [
        ('"1"', None),
        ('"1", "7"', None),
        (None, "*"),
        ("*", None),
        ('"4"', None),
        (None, None),
        ('"2"', None),
        (None, "*"),
        ('"9"', None),
        (None, None),
    ]
    assert [(r.method, r.path) for r in sent][:2] == [
        ("POST", f"/v1/{BUCKET}/k"),
        ("POST", f"/v1/{BUCKET}/k?ttl=60"),
    ]
    assert sent[4].body == b'{"a":1}'
    assert sent[6].body == b"+2"


def test_conditions_are_checked_before_any_request():
    sent: list[Seen] = []
    with answering([], requests=sent) as url:
        with thisdb.Client("tdb_x", base_url=url) as db:
            with pytest.raises(thisdb.InvalidArgument, match="give one of if_version, if_absent"):
                db.set(BUCKET, "k", "v", if_version="1", if_absent=True)
            with pytest.raises(thisdb.InvalidArgument, match="one of"):
                db.increment(BUCKET, "k", if_absent=True, if_exists=True)
            with pytest.raises(thisdb.InvalidArgument, match="not a version"):
                db.set(BUCKET, "k", "v", if_version='1", "2')
            with pytest.raises(thisdb.InvalidArgument, match="not a version"):
                db.delete(BUCKET, "k", if_version="")
            with pytest.raises(thisdb.InvalidArgument, match="at least one version"):
                db.delete(BUCKET, "k", if_version=[])
            with pytest.raises(TypeError, match="a version must be a str or an int"):
                db.set(BUCKET, "k", "v", if_version=True)
            with pytest.raises(TypeError, match="a version must be a str or an int"):
                db.get_if_changed(BUCKET, "k", 1.5)
    assert sent == []


def test_the_new_version_comes_from_the_etag():
    answers = [
        text(b"OK", "18"),
        text(b"42", "19"),
        text(b"value", "19"),
        (200, {**TEXT, "ETag": 'W/"20"'}, b"weak"),
        text(b"OK"),  # a server without versions
        text(b"value"),
    ]
    with answering(answers) as url:
        with thisdb.Client("tdb_x", base_url=url) as db:
            assert db.set_versioned(BUCKET, "k", "v", if_version="17") == "18"
            assert db.increment_versioned(BUCKET, "n", by=2) == (42, "19")
            assert db.get_versioned(BUCKET, "k") == (b"value", "19")
            assert db.get_versioned(BUCKET, "k") == (b"weak", "20")
            with pytest.raises(thisdb.UnexpectedResponse, match="no ETag"):
                db.set_versioned(BUCKET, "k", "v")
            with pytest.raises(thisdb.UnexpectedResponse, match="does not keep versions"):
                db.get_versioned(BUCKET, "k")


def test_get_if_changed_is_none_on_304():
    answers = [
        (304, {"ETag": '"7"'}, b""),
        text(b"newer", "8"),
        text(b"key not found", status=404),
    ]
    sent: list[Seen] = []
    with answering(answers, requests=sent) as url:
        with thisdb.Client("tdb_x", base_url=url) as db:
            assert db.get_if_changed(BUCKET, "k", "7") is None
            assert db.get_if_changed(BUCKET, "k", 7) == (b"newer", "8")
            with pytest.raises(thisdb.NotFound):
                db.get_if_changed(BUCKET, "k", "8")
    assert [r.headers["if-none-match"] for r in sent] == ['"7"', '"7"', '"8"']
    # A 304 to a request that did not ask for it is still not the API's way.
    with answering([(304, {}, b"")]) as url:
        with thisdb.Client("tdb_x", base_url=url) as db:
            with pytest.raises(thisdb.NotTheAPI):
                db.get(BUCKET, "k")


def test_412_is_precondition_failed_with_the_current_version():
    answers = [
        text(b"version mismatch", "18", status=412),
        (412, JSON, b'{"error": "key exists"}'),
    ]
    with answering(answers) as url:
        with thisdb.Client("tdb_x", base_url=url) as db:
            with pytest.raises(thisdb.PreconditionFailed) as caught:
                db.set(BUCKET, "k", "v", if_version="17")
            with pytest.raises(thisdb.PreconditionFailed) as absent:
                db.delete(BUCKET, "gone", if_version="3")
    error = caught.value
    assert isinstance(error, thisdb.ApiError)
    assert (error.status, error.message, error.version) == (412, "version mismatch", "18")
    assert str(error) == "412 Precondition Failed: version mismatch"
    assert (absent.value.message, absent.value.version) == ("key exists", None)
    copied = pickle.loads(pickle.dumps(error))
    assert (type(copied), copied.version, copied.message) == (
        thisdb.PreconditionFailed,
        "18",
        error.message,
    )


def test_the_transaction_body_and_its_results():
    results = {
        "ok": True,
        "results": [
            {"key": "a", "version": "18"},
            {"key": "img", "version": "1"},
            {"key": "n", "value": 5, "version": "4"},
            {"key": "old", "deleted": True},
            {
                "key": "x",
                "value": base64.b64encode(b"\xff\x00").decode(),
                "encoding": "base64",
                "version": "2",
            },
            {"key": "t", "value": "text", "version": "9"},
            {"key": "none", "value": None},
            {"prefix": "user:", "count": 3},
            {"prefix": "tmp:", "deleted": 2},
        ],
    }
    sent: list[Seen] = []
    with answering([(200, JSON, json.dumps(results).encode())], requests=sent) as url:
        with thisdb.Client("tdb_x", base_url=url) as db:
            tx = db.transaction(BUCKET)
            assert tx.check("a", "17") == 0
            assert tx.check("b", None) == 1
            assert tx.check("c", 3) == 2
            assert tx.set("a", "text", ttl=60) == 0
            assert tx.set("img", b"hello") == 1
            assert tx.increment("n", by=5) == 2
            tx.delete("old")
            tx.get("x")
            tx.get("t")
            tx.get("none")
            tx.count("user:")
            assert tx.delete_prefix("tmp:") == 8
            assert tx.results is None
            done = tx.commit()

    (request,) = sent
    assert (request.method, request.path) == ("POST", f"/v1/{BUCKET}?format=json")
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {
        "checks": [
            {"key": "a", "version": "17"},
            {"key": "b", "version": None},
            {"key": "c", "version": "3"},
        ],
        "ops": [
            {"op": "set", "key": "a", "value": "text", "ttl": 60},
            {"op": "set", "key": "img", "value": "aGVsbG8=", "encoding": "base64"},
            {"op": "increment", "key": "n", "by": 5},
            {"op": "delete", "key": "old"},
            {"op": "get", "key": "x"},
            {"op": "get", "key": "t"},
            {"op": "get", "key": "none"},
            {"op": "count", "prefix": "user:"},
            {"op": "delete_prefix", "prefix": "tmp:"},
        ],
    }
    assert tx.results == done
    assert done == [
        thisdb.OpResult("set", key="a", version="18"),
        thisdb.OpResult("set", key="img", version="1"),
        thisdb.OpResult("increment", key="n", value=5, version="4"),
        thisdb.OpResult("delete", key="old", deleted=True),
        thisdb.OpResult("get", key="x", value=b"\xff\x00", version="2"),
        thisdb.OpResult("get", key="t", value=b"text", version="9"),
        thisdb.OpResult("get", key="none"),
        thisdb.OpResult("count", prefix="user:", count=3),
        thisdb.OpResult("delete_prefix", prefix="tmp:", deleted=2),
    ]


def test_a_transaction_refuses_bad_arguments_before_any_request():
    with thisdb.Client("tdb_x", base_url="http://127.0.0.1:9") as db:
        with pytest.raises(thisdb.InvalidArgument, match="bucket cannot be empty"):
            db.transaction("")
        tx = db.transaction(BUCKET)
        with pytest.raises(thisdb.InvalidArgument, match="key cannot be empty"):
            tx.set("", "v")
        with pytest.raises(thisdb.InvalidArgument, match="not a version"):
            tx.check("a", "")
        with pytest.raises(TypeError, match="a value must be bytes or str"):
            tx.set("a", 5)
        with pytest.raises(TypeError, match="by must be an int"):
            tx.increment("n", by=1.5)
        with pytest.raises(TypeError, match="ttl must be an int"):
            tx.set("a", "v", ttl="60")
        with pytest.raises(TypeError, match="prefix must be a str"):
            tx.count(None)
        assert tx.document() == {"checks": [], "ops": []}


def test_409_is_a_conflict_with_the_failed_checks_and_versions():
    conflict = {"ok": False, "failed": [0, 1], "versions": {"a": "18", "b": "3"}}
    answers = [(409, JSON, json.dumps(conflict).encode())]
    with answering(answers) as url:
        with thisdb.Client("tdb_x", base_url=url) as db:
            tx = db.transaction(BUCKET)
            tx.check("a", "17")
            tx.check("b", None)
            tx.set("a", "x")
            with pytest.raises(thisdb.Conflict) as caught:
                tx.commit()
    error = caught.value
    assert isinstance(error, thisdb.ApiError)
    assert (error.status, error.failed, error.versions) == (409, [0, 1], {"a": "18", "b": "3"})
    assert error.message == "checks 0, 1 did not hold: nothing was applied"
    assert tx.results is None
    copied = pickle.loads(pickle.dumps(error))
    assert (copied.failed, copied.versions) == ([0, 1], {"a": "18", "b": "3"})


def test_an_answer_of_another_shape_is_unexpected():
    answers = [
        (200, JSON, b'{"ok": true, "results": []}'),
        (200, JSON, b'{"ok": true, "results": [{"key": "n", "value": "five"}]}'),
    ]
    with answering(answers) as url:
        with thisdb.Client("tdb_x", base_url=url) as db:
            tx = db.transaction(BUCKET)
            tx.increment("n")
            with pytest.raises(
                thisdb.UnexpectedResponse, match="expected a JSON object with 1 results"
            ):
                tx.commit()
            with pytest.raises(
                thisdb.UnexpectedResponse, match="result 0 .increment.: value is not a whole"
            ):
                tx.commit()


def test_the_context_manager_commits_at_the_end_of_the_block_only():
    ok = (200, JSON, b'{"ok": true, "results": [{"key": "a", "version": "1"}]}')
    sent: list[Seen] = []
    with answering([ok, ok], requests=sent) as url:
        with thisdb.Client("tdb_x", base_url=url) as db:
            with db.transaction(BUCKET) as tx:
                tx.set("a", "v")
                assert sent == []
            assert len(sent) == 1
            assert tx.results == [thisdb.OpResult("set", key="a", version="1")]

            with pytest.raises(RuntimeError):
                with db.transaction(BUCKET) as failed:
                    failed.set("a", "v")
                    raise RuntimeError("the block failed")
            assert len(sent) == 1 and failed.results is None

            with db.transaction(BUCKET) as once:
                once.set("a", "v")
                once.commit()
            assert len(sent) == 2


def test_the_async_transaction():
    ok = (200, JSON, b'{"ok": true, "results": [{"key": "n", "value": 1, "version": "1"}]}')
    conflict = (409, JSON, b'{"ok": false, "failed": [0], "versions": {"n": "1"}}')
    sent: list[Seen] = []

    async def main():
        async with thisdb.AsyncClient("tdb_x", base_url=url) as db:
            async with db.transaction(BUCKET) as tx:
                tx.check("n", None)
                tx.increment("n")
            again = db.transaction(BUCKET)
            again.check("n", None)
            again.increment("n")
            with pytest.raises(thisdb.Conflict) as caught:
                await again.commit()
            return tx.results, caught.value

    with answering([ok, conflict], requests=sent) as url:
        results, error = asyncio.run(main())
    assert results == [thisdb.OpResult("increment", key="n", value=1, version="1")]
    assert (error.failed, error.versions) == ([0], {"n": "1"})
    assert [json.loads(r.body) for r in sent] == [
        {
            "checks": [{"key": "n", "version": None}],
            "ops": [{"op": "increment", "key": "n", "by": 1}],
        }
    ] * 2


def test_the_async_client_sends_the_same_conditions():
    answers = [text(b"OK", "2"), text(b"3", "4"), (304, {}, b""), text(b"v", "4")]
    sent: list[Seen] = []

    async def main():
        async with thisdb.AsyncClient("tdb_x", base_url=url) as db:
            return (
                await db.set_versioned(BUCKET, "k", "v", if_absent=True),
                await db.increment_versioned(BUCKET, "n", if_version="3"),
                await db.get_if_changed(BUCKET, "k", "4"),
                await db.get_versioned(BUCKET, "k"),
            )

    with answering(answers, requests=sent) as url:
        assert asyncio.run(main()) == ("2", (3, "4"), None, (b"v", "4"))
    assert sent[0].headers["if-none-match"] == "*"
    assert sent[1].headers["if-match"] == '"3"'
    assert sent[2].headers["if-none-match"] == '"4"'


def test_listed_items_carry_their_version():
    page = {
        "items": [
            {"key": "a", "value": "x", "ttl": 0, "version": "3"},
            {"key": "b", "version": "12"},
            {"key": "c"},  # a server without versions
        ],
        "next_cursor": None,
    }
    with answering([(200, JSON, json.dumps(page).encode())]) as url:
        with thisdb.Client("tdb_x", base_url=url) as db:
            items = db.list_keys(BUCKET, values=True).items
    assert items == [
        thisdb.Item("a", b"x", 0, "3"),
        thisdb.Item("b", None, None, "12"),
        thisdb.Item("c"),
    ]
