"""`thisdb export BUCKET [PREFIX]` and `thisdb import BUCKET FILE` against the platform: the
arguments, --skip, --from other stores' files, the shell, and (with the bulk routes) an import
stopped by the hourly limit and gone on with as it says. See test_cli.py for the round trip,
ttls and the resume command of a malformed line."""

import base64
import json
import re
import shlex
import time

import pytest
from tool_runs import run_main


@pytest.fixture
def cli(home, server, carol, monkeypatch, platform):
    """`thisdb ARGS...` as carol, who may make 20,000 requests this hour (enough for one write
    a key, the fallback)."""
    platform.set_requests_per_hour(carol, 20_000)
    monkeypatch.setenv("THISDB_URL", server)
    monkeypatch.setenv("THISDB_API_KEY", carol.key)
    return lambda *args, stdin=b"": run_main(monkeypatch, list(args), stdin)


def test_export_a_prefix_given_as_an_argument(cli, carol, platform, tmp_path):
    bucket = platform.new_bucket(carol)
    platform.put_items(bucket, {"a:1": b"x", "a:2": b"\xff", "b:1": b"y"})

    result = cli("export", bucket, "a:")

    assert result.status == 0, result.err
    records = [json.loads(line) for line in result.lines]
    assert [(r["key"], r["value"], r.get("encoding")) for r in records] == [
        ("a:1", "x", None),
        ("a:2", "/w==", "base64"),
    ]
    assert all(r["ttl"] == 0 for r in records)
    both = cli("export", bucket, "a:", "--prefix", "b:")
    assert both.status == 2 and b"give PREFIX or --prefix, not both" in both.err


def test_import_a_file_given_as_an_argument_after_skip(cli, carol, platform, tmp_path):
    bucket = platform.new_bucket(carol)
    dump = tmp_path / "dump.ndjson"
    dump.write_text(
        "not json: passed over\n"
        '{"key": "a", "value": "1"}\n'
        "\n"
        '{"key": "b", "value": "AP8=", "encoding": "base64"}\n'
    )

    result = cli("import", bucket, str(dump), "--skip", "1")

    assert result.status == 0, result.err
    assert result.text == f"imported 2 keys into {bucket}\n"
    assert platform.stored(bucket) == {"a": b"1", "b": b"\x00\xff"}
    both = cli("import", bucket, str(dump), "--file", str(dump))
    assert both.status == 2 and b"give FILE or --file, not both" in both.err


def test_a_bad_record_after_a_blank_line_is_named_by_its_line(cli, carol, platform, tmp_path):
    bucket = platform.new_bucket(carol)
    dump = tmp_path / "dump.ndjson"
    lines = ['{"key": "a", "value": "1"}', "", '{"key": "b", "value": "2"}', '{"key": ""}']
    dump.write_text("\n".join(lines) + "\n")

    result = cli("import", bucket, str(dump))

    assert result.status == 2
    assert b'error: line 4: expected {"key": ..., "value": ...}' in result.err
    assert b"imported 2 keys into" in result.err and b"then stopped at line 4" in result.err
    assert f"thisdb import {bucket} {dump} --skip 3\n".encode() in result.err
    assert platform.stored(bucket) == {"a": b"1", "b": b"2"}


def test_a_line_the_server_refuses_is_named_by_its_line(cli, carol, platform, tmp_path):
    bucket = platform.new_bucket(carol)
    dump = tmp_path / "dump.ndjson"
    records = [{"key": f"k{n}", "value": "v"} for n in range(5)]
    records[3]["key"] = "x" * 600  # longer than a key may be: the server says so
    dump.write_text("".join(json.dumps(record) + "\n" for record in records))

    result = cli("import", bucket, str(dump))

    assert result.status == 2
    assert b"400 Bad Request:" in result.err and b"512 bytes" in result.err
    assert b"then stopped at line 4; to go on from there:\n" in result.err
    assert f"  thisdb import {bucket} {dump} --skip 3\n".encode() in result.err
    assert sorted(platform.stored(bucket)) == ["k0", "k1", "k2"]


def test_from_workers_kv(cli, carol, platform, tmp_path):
    bucket = platform.new_bucket(carol)
    bulk = tmp_path / "kv.json"
    bulk.write_text(
        json.dumps(
            [
                {"key": "plain", "value": "text", "expiration_ttl": 600},
                {"key": "binary", "value": "AP8=", "base64": True},
                {"key": "gone", "value": "x", "expiration": 1000},  # long expired
            ]
        )
    )

    result = cli("import", bucket, str(bulk), "--from", "workers-kv", "--ttl", "0")

    assert result.status == 0, result.err
    assert result.text.startswith(f"imported 2 keys into {bucket} (skipped 1 that expired")
    assert platform.stored(bucket) == {"plain": b"text", "binary": b"\x00\xff"}
    expiries = platform.expiries(bucket)
    assert expiries["binary"] is None and expiries["plain"] is not None


def test_from_consul_and_a_bad_entry_resumes_by_entry(cli, carol, platform, tmp_path):
    bucket = platform.new_bucket(carol)
    export = tmp_path / "consul.json"
    entries = [
        {"key": "app/name", "flags": 0, "value": base64.b64encode("Zoë".encode()).decode()},
        {"key": "app/blob", "flags": 0, "value": base64.b64encode(b"\xff").decode()},
        {"key": "app/bad", "flags": 0, "value": "not base64!"},
        {"key": "app/last", "flags": 0, "value": base64.b64encode(b"end").decode()},
    ]
    export.write_text(json.dumps(entries))

    stopped = cli("import", bucket, str(export), "--from", "consul")

    assert stopped.status == 2
    assert b'record 3: "value" is not base64' in stopped.err
    command = re.search(rb"\n  (thisdb import .*)\n", stopped.err)[1].decode()
    assert command == f"thisdb import {bucket} {export} --from consul --skip 2"
    assert platform.stored(bucket) == {"app/name": "Zoë".encode(), "app/blob": b"\xff"}

    resumed = cli(*shlex.split(command)[1:-1], "3")  # the bad entry passed over too
    assert resumed.status == 0, resumed.err
    assert platform.stored(bucket)["app/last"] == b"end"


@pytest.mark.parametrize(
    "listing",
    [b'[["a", "1"], ["b", "two words"]]', b"a=1\nb=two words\n"],
    ids=["json", "text"],
)
def test_from_a_kvdb_listing(cli, carol, platform, tmp_path, listing):
    bucket = platform.new_bucket(carol)
    result = cli("import", bucket, "-", "--from", "kvdb", stdin=listing)
    assert result.status == 0, result.err
    assert platform.stored(bucket) == {"a": b"1", "b": b"two words"}


def test_export_and_import_in_the_shell(cli, carol, platform, tmp_path):
    source, target = platform.new_bucket(carol), platform.new_bucket(carol)
    platform.put_items(source, {"p:1": b"x", "p:2": b"y", "q": b"z"})
    dump = tmp_path / "p.ndjson"
    commands = f"use {source}\nexport p: --output {dump}\nuse {target}\nimport {dump}\n"

    result = cli("-c", stdin=commands.encode())

    assert result.status == 0, result.err
    assert result.text == f"imported 2 keys into {target}\n"
    assert platform.stored(target) == {"p:1": b"x", "p:2": b"y"}


def test_out_of_requests_mid_import_then_the_command_it_prints(
    with_bulk_routes, cli, carol, platform, tmp_path, monkeypatch
):
    """With the bulk routes an import counts one request per 100 lines: five requests of the
    hour run out within 5,000 lines. The import says what it applied and how to go on; with
    the limit raised, that command writes the rest."""
    platform.set_requests_per_hour(carol, 5)
    bucket = platform.new_bucket(carol)
    dump = tmp_path / "big.ndjson"
    dump.write_text("".join(f'{{"key": "k{n:05d}", "value": "v"}}\n' for n in range(5000)))

    stopped = cli("import", bucket, str(dump))

    assert stopped.status == 1
    assert b"429 Too Many Requests" in stopped.err
    said = re.search(rb"imported (\d+) keys into \w+, then stopped at line (\d+);", stopped.err)
    applied, line = int(said[1]), int(said[2])
    assert 0 < applied < 5000 and line == applied + 1
    assert len(platform.stored(bucket)) == applied
    command = re.search(rb"\n  (thisdb import .*)\n", stopped.err)[1].decode()
    assert command == f"thisdb import {bucket} {dump} --skip {applied}"

    platform.set_requests_per_hour(carol, 100_000)
    time.sleep(11)  # the server keeps an account's quotas for 10 s (THISDB_AUTH_CACHE_SECONDS)
    resumed = cli(*shlex.split(command)[1:])
    assert resumed.status == 0, resumed.err
    assert resumed.text == f"imported {5000 - applied} keys into {bucket}\n"
    assert len(platform.stored(bucket)) == 5000
