"""`thisdb export` and `thisdb import` against the production front (granian, which streams both
ways; live_platform's stream_url), end to end: a bucket out to a file and into another, equal;
a Workers KV file; a file with a line the server refuses in its middle, many batches and HTTP
chunks in, stopped and then finished by the command it prints. (The same commands against
gunicorn: test_cli_bulk.py and test_cli.py.)"""

import json
import re
import shlex
import time

import pytest
from test_bulk import _contents, _fill, _same_expiries
from tool_runs import run_main


@pytest.fixture
def front(platform) -> str:
    return platform.stream_url


@pytest.fixture
def cli(home, front, carol, monkeypatch, platform):
    """`thisdb ARGS...` as carol, through the front."""
    platform.set_requests_per_hour(carol, 20_000)
    monkeypatch.setenv("THISDB_URL", front)
    monkeypatch.setenv("THISDB_API_KEY", carol.key)
    return lambda *args, stdin=b"": run_main(monkeypatch, list(args), stdin)


def test_export_to_a_file_then_import_it_into_another_bucket(cli, carol, platform, tmp_path):
    source = platform.new_bucket(carol)
    target = platform.new_bucket(carol, default_ttl=60)
    contents = _contents(5000)  # binary values, newlines, non-ASCII, URL characters
    expiries = _fill(platform, source, contents)
    dump = tmp_path / "bucket.ndjson"

    started = time.monotonic()
    exported = cli("export", source, "--output", str(dump))
    imported = cli("import", target, str(dump))
    took = time.monotonic() - started

    assert exported.status == 0, exported.err
    assert f"exported {len(contents)} keys from {source}".encode() in exported.err
    assert len(dump.read_bytes().splitlines()) == len(contents)
    assert imported.status == 0, imported.err
    assert imported.text == f"imported {len(contents)} keys into {target}\n"
    assert platform.stored(target) == contents
    _same_expiries(platform.expiries(target), expiries, took)  # never stays never


def test_from_workers_kv(cli, carol, platform, tmp_path):
    bucket = platform.new_bucket(carol, default_ttl=0)
    items = [{"key": f"kv/{n:04d}", "value": f"text {n}"} for n in range(3000)]
    items[10] |= {"expiration_ttl": 600}
    items[20] = {"key": "kv/binary", "value": "AP8=", "base64": True}
    bulk = tmp_path / "kv.json"
    bulk.write_text(json.dumps(items))

    result = cli("import", bucket, str(bulk), "--from", "workers-kv")

    assert result.status == 0, result.err
    assert result.text == f"imported 3000 keys into {bucket}\n"
    stored = platform.stored(bucket)
    assert len(stored) == 3000 and stored["kv/binary"] == b"\x00\xff"
    assert stored["kv/0011"] == b"text 11"
    expiries = platform.expiries(bucket)
    assert 590 < expiries["kv/0010"] - time.time() <= 600
    assert expiries["kv/0011"] is None


def test_a_refused_line_in_the_middle_then_the_command_it_prints(cli, carol, platform, tmp_path):
    """Line 12,345 of 30,000 has a key longer than the server takes: the server refuses it
    while the tool is still sending the lines after it, and the tool prints the server's
    message, what was applied and the command that goes on from that line. Mended, the file
    is finished by that command, run as printed."""
    bucket = platform.new_bucket(carol, default_ttl=0)
    records = [{"key": f"k{n:05d}", "value": "v" * 20} for n in range(30_000)]
    records[12_344]["key"] = "x" * 600
    dump = tmp_path / "big dump.ndjson"
    dump.write_text("".join(json.dumps(record) + "\n" for record in records))

    stopped = cli("import", bucket, str(dump))

    assert stopped.status == 2, stopped.err
    assert b"400 Bad Request: line 12345: a key must be 1 to 512 bytes" in stopped.err
    assert b"lines 1 to 12344 were applied" in stopped.err
    said = re.search(rb"imported (\d+) keys into \w+, then stopped at line (\d+);", stopped.err)
    assert (int(said[1]), int(said[2])) == (12_344, 12_345)
    command = re.search(rb"\n  (thisdb import .*)\n", stopped.err)[1].decode()
    assert command == f"thisdb import {bucket} '{dump}' --skip 12344"
    assert sorted(platform.stored(bucket)) == [f"k{n:05d}" for n in range(12_344)]

    records[12_344]["key"] = "k12344"
    dump.write_text("".join(json.dumps(record) + "\n" for record in records))
    resumed = cli(*shlex.split(command)[1:])
    assert resumed.status == 0, resumed.err
    assert resumed.text == f"imported {30_000 - 12_344} keys into {bucket}\n"
    assert sorted(platform.stored(bucket)) == [f"k{n:05d}" for n in range(30_000)]
