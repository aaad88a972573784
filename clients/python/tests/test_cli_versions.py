"""The `thisdb` tool's versions, conditional writes and transactions against the platform over
HTTP: --show-version, --if-version, --if-absent (exit 5 when they do not hold), and `txn`
(exit 6 on a conflict), from the command line and from `thisdb -c`."""

import json

import pytest
from tool_runs import run_main


@pytest.fixture
def cli(home, server, carol, monkeypatch):
    """Run `thisdb ARGS...` with THISDB_URL and THISDB_API_KEY of carol set."""
    monkeypatch.setenv("THISDB_URL", server)
    monkeypatch.setenv("THISDB_API_KEY", carol.key)
    return lambda *args, stdin=b"": run_main(monkeypatch, list(args), stdin)


@pytest.fixture
def bucket(cli) -> str:
    result = cli("bucket", "create")
    assert result.status == 0, result.err
    return result.text.strip()


def shown_version(err: bytes) -> str:
    line = err.decode().strip()
    assert line.startswith("version: "), line
    return line.removeprefix("version: ")


def test_show_version_and_conditional_set(cli, bucket, platform):
    made = cli("set", bucket, "k", "one", "--show-version")
    assert (made.status, made.text) == (0, "OK\n"), made.err
    first = shown_version(made.err)
    got = cli("get", bucket, "k", "--show-version")
    assert (got.out, shown_version(got.err)) == (b"one", first)

    second = json.loads(cli("--json", "set", bucket, "k", "two", "--show-version").text)
    assert second["result"] == "OK" and int(second["version"]) > int(first)

    stale = cli("set", bucket, "k", "lost", "--if-version", first)
    assert (stale.status, stale.out) == (5, b"")
    assert b"412 Precondition Failed" in stale.err
    assert f"the key is at version {second['version']}".encode() in stale.err
    assert platform.stored(bucket) == {"k": b"two"}

    refused = cli("--json", "set", bucket, "k", "lost", "--if-version", first)
    error = json.loads(refused.err)
    assert (refused.status, error["status"], error["version"]) == (5, 412, second["version"])

    done = cli(
        "set", bucket, "k", "three", "--if-version", first, "--if-version", second["version"]
    )
    assert done.status == 0, done.err
    assert platform.stored(bucket) == {"k": b"three"}


def test_if_absent_on_set_and_incr(cli, bucket, platform):
    assert cli("set", bucket, "lock", "me", "--if-absent").status == 0
    taken = cli("set", bucket, "lock", "you", "--if-absent")
    assert taken.status == 5 and b"the key is at version" in taken.err
    counted = cli("--json", "incr", bucket, "n", "--if-absent", "--show-version")
    assert counted.status == 0, counted.err
    record = json.loads(counted.text)
    assert (record["key"], record["value"]) == ("n", 1) and record["version"]
    assert cli("incr", bucket, "n", "--if-absent").status == 5
    assert cli("incr", bucket, "n", "5", "--if-version", record["version"]).text == "6\n"
    missing = cli("set", bucket, "nothing", "v", "--if-exists")
    assert missing.status == 5 and b"the key does not exist" in missing.err
    assert platform.stored(bucket) == {"lock": b"me", "n": b"6"}


def test_del_with_a_version(cli, bucket, platform):
    first = shown_version(cli("set", bucket, "k", "one", "--show-version").err)
    second = shown_version(cli("set", bucket, "k", "two", "--show-version").err)
    assert cli("del", bucket, "k", "--if-version", first).status == 5
    assert platform.stored(bucket) == {"k": b"two"}
    assert cli("del", bucket, "k", "--if-version", second).status == 0
    assert platform.stored(bucket) == {}


def test_keys_json_carries_the_versions(cli, bucket):
    version = shown_version(cli("set", bucket, "a", "x", "--show-version").err)
    listed = cli("--json", "keys", bucket, "--values")
    assert json.loads(listed.text) == {"key": "a", "value": "x", "version": version}


def test_txn_commits_from_a_file_and_exits_6_on_a_conflict(cli, bucket, tmp_path, platform):
    version = shown_version(cli("set", bucket, "a", "one", "--show-version").err)
    path = tmp_path / "tx.json"
    path.write_text(
        json.dumps(
            {
                "checks": [{"key": "a", "version": version}, {"key": "b", "version": None}],
                "ops": [
                    {"op": "set", "key": "a", "value": "two"},
                    {"op": "set", "key": "bin", "value": "AP8=", "encoding": "base64"},
                    {"op": "increment", "key": "n", "by": 5},
                    {"op": "get", "key": "bin"},
                ],
            }
        )
    )
    done = cli("txn", bucket, str(path))
    assert done.status == 0, done.err
    result = json.loads(done.text)
    assert result["ok"] is True
    new = result["results"][0]["version"]
    assert int(new) > int(version)
    assert result["results"][2]["value"] == 5
    got = result["results"][3]
    assert (got["key"], got["value"], got["encoding"]) == ("bin", "AP8=", "base64")
    assert platform.stored(bucket) == {"a": b"two", "bin": b"\x00\xff", "n": b"5"}

    again = cli("txn", bucket, stdin=path.read_bytes())  # the version it checks is stale now
    assert again.status == 6
    conflict = json.loads(again.text)
    assert (conflict["ok"], conflict["failed"]) == (False, [0])
    assert conflict["versions"]["a"] == new
    assert b"409 Conflict" in again.err
    assert platform.stored(bucket) == {"a": b"two", "bin": b"\x00\xff", "n": b"5"}

    invalid = cli("txn", bucket, "-", stdin=b'{"ops": [{"op": "frobnicate", "key": "x"}]}')
    assert (invalid.status, invalid.out) == (1, b"")
    assert b"400 Bad Request" in invalid.err


def test_txn_in_thisdb_c(cli, bucket, tmp_path, platform):
    path = tmp_path / "tx.json"
    path.write_text(json.dumps({"ops": [{"op": "set", "key": "k", "value": "v"}]}))
    lines = f"use {bucket}\ntxn {path}\nget k --show-version\n"
    done = cli("-c", stdin=lines.encode())
    assert done.status == 0, done.err
    first, value = done.lines
    version = json.loads(first)["results"][0]["version"]
    assert value == "v"
    assert shown_version(done.err) == version
    assert platform.stored(bucket) == {"k": b"v"}
