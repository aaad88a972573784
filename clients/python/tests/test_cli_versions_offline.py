"""The tool's conditional writes, versions and transactions against a stand-in server that gives
the answers of the API's spec: the headers and bodies it sends, what it prints, and its exit
statuses (5: a condition did not hold, 6: a transaction's check did not hold)."""

import json

import pytest
from stand_in import Seen, answering
from tool_runs import run_main

BUCKET = "A" * 20
TEXT = {"Content-Type": "text/plain; charset=utf-8"}
JSON = {"Content-Type": "application/json"}


def text(body: bytes, version: str | None = None, status: int = 200):
    headers = dict(TEXT)
    if version is not None:
        headers["ETag"] = f'"{version}"'
    return (status, headers, body)


@pytest.fixture
def tool(home, monkeypatch):
    """Run the tool against a stand-in: tool(answers, *args, stdin=b"") -> (Result, requests)."""

    def run(answers, *args, stdin=b""):
        sent: list[Seen] = []
        with answering(list(answers), requests=sent) as url:
            monkeypatch.setenv("THISDB_URL", url)
            monkeypatch.setenv("THISDB_API_KEY", "tdb_x")
            result = run_main(monkeypatch, list(args), stdin)
        return result, sent

    return run


def test_set_incr_and_del_send_their_conditions(tool):
    done, sent = tool([text(b"OK", "2")], "set", BUCKET, "k", "v", "--if-version", "1")
    assert (done.status, done.text, done.err) == (0, "OK\n", b"")
    assert sent[0].headers["if-match"] == '"1"'

    done, sent = tool(
        [text(b"OK", "3")], "set", BUCKET, "k", "v", "--if-version", "1", "--if-version", "2"
    )
    assert sent[0].headers["if-match"] == '"1", "2"'

    done, sent = tool([text(b"OK", "1")], "set", BUCKET, "k", "--if-absent", stdin=b"piped")
    assert (sent[0].headers["if-none-match"], sent[0].body) == ("*", b"piped")
    assert "if-match" not in sent[0].headers

    done, sent = tool([text(b"OK", "1")], "set", BUCKET, "k", "v", "--if-exists")
    assert sent[0].headers["if-match"] == "*"

    done, sent = tool([text(b"6", "4")], "incr", BUCKET, "n", "-5", "--if-version", "3")
    assert (done.status, done.text) == (0, "6\n")
    assert (sent[0].body, sent[0].headers["if-match"]) == (b"-5", '"3"')

    done, sent = tool([text(b"1", "1")], "incr", BUCKET, "n", "--if-absent")
    assert sent[0].headers["if-none-match"] == "*"

    done, sent = tool([text(b"OK")], "del", BUCKET, "k", "--if-version", "9")
    assert (done.status, sent[0].method, sent[0].headers["if-match"]) == (0, "DELETE", '"9"')

    done, sent = tool([text(b"OK")], "set", BUCKET, "k", "v")
    assert "if-match" not in sent[0].headers and "if-none-match" not in sent[0].headers


def test_two_conditions_are_a_usage_error(tool):
    done, sent = tool([], "set", BUCKET, "k", "v", "--if-version", "1", "--if-absent")
    assert done.status == 2
    assert b"give one of if_version, if_absent and if_exists" in done.err
    assert sent == []
    done, sent = tool([], "set", BUCKET, "k", "v", "--if-version", 'x"y')
    assert (done.status, sent) == (2, [])


def test_show_version_prints_the_version_on_stderr_or_in_the_json(tool):
    done, _ = tool([text(b"OK", "18")], "set", BUCKET, "k", "v", "--show-version")
    assert (done.status, done.text, done.err) == (0, "OK\n", b"version: 18\n")
    done, _ = tool([text(b"OK", "18")], "--json", "set", BUCKET, "k", "v", "--show-version")
    assert (json.loads(done.text), done.err) == ({"result": "OK", "version": "18"}, b"")

    done, _ = tool([text(b"\x00\xff", "7")], "get", BUCKET, "k", "--show-version")
    assert (done.out, done.err) == (b"\x00\xff", b"version: 7\n")  # stdout: the bytes alone
    done, _ = tool([text(b"hi", "7")], "--json", "get", BUCKET, "k", "--show-version")
    assert json.loads(done.text) == {"key": "k", "value": "hi", "version": "7"}

    done, _ = tool([text(b"3", "5")], "incr", BUCKET, "n", "--show-version")
    assert (done.text, done.err) == ("3\n", b"version: 5\n")
    done, _ = tool([text(b"3", "5")], "--json", "incr", BUCKET, "n", "--show-version")
    assert json.loads(done.text) == {"key": "n", "value": 3, "version": "5"}

    done, _ = tool([text(b"OK")], "set", BUCKET, "k", "v", "--show-version")
    assert done.status == 1 and b"no ETag" in done.err  # a server without versions


def test_a_condition_that_does_not_hold_exits_5(tool):
    refused = text(b"precondition failed", "3", status=412)
    done, _ = tool([refused], "set", BUCKET, "k", "v", "--if-absent")
    assert (done.status, done.out) == (5, b"")
    assert done.err == (
        b"error: 412 Precondition Failed: precondition failed\nthe key is at version 3\n"
    )

    done, _ = tool(
        [text(b"precondition failed", status=412)], "del", BUCKET, "k", "--if-version", "3"
    )
    assert done.status == 5
    assert done.err.endswith(b"\nthe key does not exist\n")

    done, _ = tool([refused], "--json", "incr", BUCKET, "n", "--if-version", "2")
    assert done.status == 5
    assert json.loads(done.err) == {
        "error": "precondition failed",
        "status": 412,
        "version": "3",
    }


def test_keys_with_json_carry_the_versions(tool):
    page = {"items": [{"key": "a", "value": "x", "ttl": 0, "version": "4"}, {"key": "b"}]}
    done, _ = tool([(200, JSON, json.dumps(page).encode())], "--json", "keys", BUCKET, "--values")
    assert [json.loads(line) for line in done.lines] == [
        {"key": "a", "value": "x", "version": "4"},
        {"key": "b"},
    ]


TRANSACTION = {
    "checks": [{"key": "a", "version": "17"}],
    "ops": [{"op": "set", "key": "a", "value": "v"}, {"op": "get", "key": "a"}],
}
COMMITTED = {
    "ok": True,
    "results": [{"key": "a", "version": "18"}, {"key": "a", "value": "v", "version": "18"}],
}
CONFLICT = {"ok": False, "failed": [0], "versions": {"a": "19"}}


def test_txn_sends_the_file_as_it_is_and_prints_the_result(tool, home):
    body = json.dumps(TRANSACTION, indent=2).encode()
    path = home / "tx.json"
    path.write_bytes(body)
    answer = (200, JSON, json.dumps(COMMITTED).encode())

    done, sent = tool([answer], "txn", BUCKET, str(path))
    assert done.status == 0, done.err
    assert json.loads(done.text) == COMMITTED and len(done.lines) == 1
    (request,) = sent
    assert (request.method, request.path) == ("POST", f"/v1/{BUCKET}?format=json")
    assert request.headers["content-type"] == "application/json"
    assert request.body == body

    for args in (["txn", BUCKET], ["txn", BUCKET, "-"]):
        done, sent = tool([answer], *args, stdin=body)
        assert (done.status, json.loads(done.text), sent[0].body) == (0, COMMITTED, body)


def test_txn_exits_6_on_a_conflict_and_prints_it(tool):
    conflict = (409, JSON, json.dumps(CONFLICT).encode())
    body = json.dumps(TRANSACTION).encode()
    done, _ = tool([conflict], "txn", BUCKET, stdin=body)
    assert done.status == 6
    assert json.loads(done.text) == CONFLICT
    assert done.err == (
        b"error: 409 Conflict: check 0 did not hold: nothing was applied\nnow a: version 19\n"
    )

    done, _ = tool([conflict], "--json", "txn", BUCKET, stdin=body)
    assert (done.status, json.loads(done.text)) == (6, CONFLICT)
    assert json.loads(done.err) == {
        "error": "check 0 did not hold: nothing was applied",
        "status": 409,
        "failed": [0],
        "versions": {"a": "19"},
    }

    invalid = (400, JSON, b'{"error": "ops[1]: unknown op \\"frob\\""}')
    done, _ = tool([invalid], "txn", BUCKET, stdin=b'{"ops": [{}, {"op": "frob"}]}')
    assert (done.status, done.out) == (1, b"")
    assert b'400 Bad Request: ops[1]: unknown op "frob"' in done.err


def test_txn_refuses_what_is_not_a_json_object(tool, home):
    for given in (b"{not json", b"[1, 2]", b"\xff"):
        done, sent = tool([], "txn", BUCKET, stdin=given)
        assert (done.status, sent) == (2, [])
    assert b"must be a JSON object" in tool([], "txn", BUCKET, stdin=b"[]")[0].err
    missing = tool([], "txn", BUCKET, str(home / "nowhere.json"))[0]
    assert missing.status == 2 and b"cannot read" in missing.err


def test_txn_in_thisdb_c_takes_a_file_and_the_current_bucket(tool, home):
    path = home / "tx.json"
    path.write_text(json.dumps(TRANSACTION))
    listing = (200, JSON, b'{"items": [], "next_cursor": null}')  # `use` checks the bucket
    answer = (200, JSON, json.dumps(COMMITTED).encode())
    lines = f"use {BUCKET}\ntxn {path}\n".encode()
    done, sent = tool([listing, answer], "-c", stdin=lines)
    assert (done.status, json.loads(done.text)) == (0, COMMITTED)
    assert sent[1].path == f"/v1/{BUCKET}?format=json"

    done, sent = tool([listing], "-c", stdin=f"use {BUCKET}\ntxn\n".encode())
    assert done.status == 2
    assert b"give the FILE in the shell" in done.err
