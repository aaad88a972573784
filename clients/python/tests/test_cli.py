"""The `thisdb` tool against the platform over HTTP: each command, the profile file, output
for people and --json, exit statuses, export and import, and `thisdb -c`.

Most tests run the tool's main() in this process (its stdin, stdout and stderr swapped for
buffers); the ones about processes, pipes and heredocs run the installed `thisdb` script."""

import base64
import json
import os
import re
import signal
import stat
import subprocess
import time

import pytest
from thisdb.cli.config import ConfigFile
from thisdb.client import Client
from tool_runs import THISDB, run_main, script


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


# Profiles and buckets


def test_login_checks_the_key_and_writes_a_private_profile(
    home, server, carol, monkeypatch, platform
):
    path = home / "config" / "thisdb" / "config.toml"
    wrong = run_main(monkeypatch, ["login", "--url", server, "--api-key", "tdb_wrong"])
    assert wrong.status == 1
    assert b"403 Forbidden: invalid API key" in wrong.err
    elsewhere = run_main(monkeypatch, ["login", "--url", server + "/x", "--api-key", carol.key])
    assert elsewhere.status == 4
    assert b"not like a ThisDB v1 API: check the base URL" in elsewhere.err
    assert not path.exists()

    done = run_main(monkeypatch, ["login", "--url", server + "/v1", "--api-key", carol.key])
    assert done.status == 0, done.err
    assert f"profile 'default' saved in {path}" in done.text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_text()
    assert f'url = "{server}/v1"' in text and f'api_key = "{carol.key}"' in text

    created = run_main(monkeypatch, ["bucket", "create"])  # settings from the profile
    assert created.status == 0, created.err
    assert platform.bucket(created.text.strip())["owner"] == carol.username


def test_named_profiles_and_precedence(home, server, carol, monkeypatch):
    assert run_main(monkeypatch, ["login", "--url", server, "--api-key", carol.key]).status == 0
    other = run_main(monkeypatch, ["login", "-p", "work", "--url", server, "--api-key", carol.key])
    assert other.status == 0
    # A profile's settings give way to the environment, which gives way to the options.
    monkeypatch.setenv("THISDB_API_KEY", "tdb_from_env")
    assert b"invalid API key" in run_main(monkeypatch, ["-p", "work", "bucket", "create"]).err
    ok = run_main(monkeypatch, ["-p", "work", "--api-key", carol.key, "bucket", "create"])
    assert ok.status == 0, ok.err
    monkeypatch.delenv("THISDB_API_KEY")

    made = run_main(monkeypatch, ["--profile", "work", "bucket", "create"]).text.strip()
    config = ConfigFile.load()  # each profile remembers the buckets created under it
    assert (config.buckets("work"), config.buckets("default")) == ([ok.text.strip(), made], [])
    monkeypatch.setenv("THISDB_PROFILE", "work")
    listed = run_main(monkeypatch, ["--json", "bucket", "list"])
    assert [json.loads(line)["bucket"] for line in listed.lines] == sorted([ok.text.strip(), made])

    missing = run_main(monkeypatch, ["-p", "nope", "bucket", "list"])
    assert missing.status == 2
    assert b"no profile 'nope'" in missing.err


def test_bucket_create_list_update_delete(home, server, carol, monkeypatch, platform):
    monkeypatch.setenv("THISDB_URL", server)
    monkeypatch.setenv("THISDB_API_KEY", carol.key)
    nothing = run_main(monkeypatch, ["bucket", "list"])
    assert (nothing.status, nothing.out, nothing.err) == (0, b"", b"")

    run_main(monkeypatch, ["login"])  # URL and key from the environment
    first = run_main(monkeypatch, ["bucket", "create", "--default-ttl", "0"]).text.strip()
    second = json.loads(run_main(monkeypatch, ["--json", "bucket", "create"]).out)["bucket"]
    assert platform.buckets(carol) == {first: 0, second: 604800}
    assert ConfigFile.load().buckets("default") == [first, second]

    updated = run_main(monkeypatch, ["bucket", "update", first, "--default-ttl", "60"])
    assert updated.text == "OK\n"
    assert platform.bucket(first)["default_ttl"] == 60
    assert run_main(monkeypatch, ["bucket", "delete", first]).status == 0
    assert platform.bucket(first) is None
    assert ConfigFile.load().buckets("default") == [second]
    assert [line.split("\t")[0] for line in run_main(monkeypatch, ["bucket", "list"]).lines] == [
        second
    ]


def test_parallel_bucket_creates_remember_every_bucket(home, server, carol, platform):
    """Ten `thisdb bucket create` at once each re-read and write the profile file under a lock:
    none of the ten is lost."""
    ConfigFile.load().save_profile("default", server, carol.key, make_default=True)
    env = {**os.environ, "HOME": str(home)}  # XDG_CONFIG_HOME of the home fixture
    processes = [
        subprocess.Popen([THISDB, "bucket", "create"], stdout=subprocess.PIPE, env=env)
        for _ in range(10)
    ]
    made = []
    for process in processes:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        made.append(out.decode().strip())

    assert sorted(ConfigFile.load().buckets("default")) == sorted(made)
    assert set(platform.buckets(carol)) == set(made)
    path = home / "config" / "thisdb" / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.toml", "config.toml.lock"]


def test_bucket_list_asks_the_server_for_every_page(cli, carol, monkeypatch, platform):
    made = [platform.new_bucket(carol, default_ttl=ttl) for ttl in (0, 90, 3600)]
    made += [cli("bucket", "create").text.strip() for _ in range(2)]  # and remembered
    mine = sorted(made)
    platform.set_usage(mine[0], keys=1234, stored_bytes=5678901)
    daves = platform.new_bucket(platform.persona("dave"))
    ttls = platform.buckets(carol)
    pages = []
    list_buckets = Client.list_buckets

    def two_at_a_time(self, limit=None, cursor=None):
        pages.append(cursor)
        return list_buckets(self, 2, cursor)

    monkeypatch.setattr(Client, "list_buckets", two_at_a_time)

    # Not on a terminal: one bucket a line, tab-separated, the id first.
    lines = cli("bucket", "list")
    assert (lines.status, lines.err) == (0, b"")
    assert lines.lines == [
        f"{b}\t{ttls[b]}\t{1234 if b == mine[0] else 0}\t{5678901 if b == mine[0] else 0}"
        for b in mine
    ]
    assert len(pages) == 3 and pages[0] is None and all(pages[1:])  # 2 + 2 + 1
    assert daves not in lines.text

    documents = cli("--json", "bucket", "list")
    records = [json.loads(line) for line in documents.lines]
    assert [r["bucket"] for r in records] == mine
    assert records[0] == {"bucket": mine[0], "default_ttl": ttls[mine[0]], "keys": 1234,
                          "bytes": 5678901}  # fmt: skip
    assert documents.err == b""

    # On a terminal, a table.
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    table = [re.sub(r"\x1b\[[0-9;]*m", "", line).split() for line in cli("bucket", "list").lines]
    shown = {0: "never", 90: "90s", 3600: "1h", 604800: "7d"}
    assert table[0] == ["bucket", "default", "ttl", "keys", "bytes"]
    assert table[1:] == [
        [b, shown[ttls[b]], "1,234" if b == mine[0] else "0", "5,678,901" if b == mine[0] else "0"]
        for b in mine
    ]


def test_bucket_list_with_a_token_is_refused(cli, bucket, carol, monkeypatch):
    token = cli("token", "create", bucket).text.strip()
    monkeypatch.delenv("THISDB_API_KEY")
    monkeypatch.setenv("THISDB_TOKEN", token)
    refused = cli("bucket", "list")
    assert refused.status == 1
    assert b"403 Forbidden: a token cannot list buckets" in refused.err


# Keys and tokens


def test_set_from_an_argument_stdin_or_a_file_and_get_bytes_back(cli, bucket, tmp_path, platform):
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 4)
    assert cli("set", bucket, "arg", "hello world").text == "OK\n"
    assert cli("set", bucket, "stdin", stdin=b"\x00piped\xff\n").status == 0
    assert cli("set", bucket, "file", "--file", str(blob)).status == 0
    assert cli("set", bucket, "ttl", "x", "--ttl", "0").status == 0

    assert platform.stored(bucket) == {
        "arg": b"hello world",
        "stdin": b"\x00piped\xff\n",
        "file": bytes(range(256)) * 4,
        "ttl": b"x",
    }
    assert platform.expiries(bucket)["ttl"] is None
    assert cli("get", bucket, "file").out == bytes(range(256)) * 4  # exact, no newline added
    assert cli("get", bucket, "stdin").out == b"\x00piped\xff\n"
    out = tmp_path / "out.bin"
    assert cli("get", bucket, "file", "--output", str(out)).status == 0
    assert out.read_bytes() == bytes(range(256)) * 4
    assert json.loads(cli("--json", "get", bucket, "stdin").out) == {
        "key": "stdin",
        "value": "AHBpcGVk/wo=",
        "encoding": "base64",
    }
    assert json.loads(cli("--json", "set", bucket, "k", "v").out) == {"result": "OK"}


def test_incr_and_del(cli, bucket, platform):
    assert cli("incr", bucket, "n").text == "1\n"
    assert cli("incr", bucket, "n", "41").text == "42\n"
    assert cli("incr", bucket, "n", "-50").text == "-8\n"
    assert cli("incr", bucket, "n", "+3", "--ttl", "0").text == "-5\n"
    assert platform.expiries(bucket)["n"] is None
    assert json.loads(cli("--json", "incr", bucket, "n").out) == {"key": "n", "value": -4}
    assert cli("incr", bucket, "n", "--by", "3").text == "-1\n"
    assert cli("incr", bucket, "n", "--by", "-4", "--ttl", "0").text == "-5\n"
    assert cli("incr", bucket, "n", "--by=+7").text == "2\n"
    both = cli("incr", bucket, "n", "2", "--by", "3")
    assert both.status == 2 and b"give BY or --by, not both" in both.err
    assert cli("incr", bucket, "n", "--by", "x").status == 2
    assert cli("get", bucket, "n").out == b"2"

    assert cli("del", bucket, "n").text == "OK\n"
    assert platform.stored(bucket) == {}
    gone = cli("del", bucket, "n")
    assert (gone.status, gone.out) == (1, b"")
    assert gone.err == b"error: 404 Not Found: key not found\n"


def test_keys_lists_every_page(cli, bucket, platform):
    keys = [f"user:{n:04d}" for n in range(1500)]
    platform.put_items(bucket, {k: b"v" for k in keys})
    platform.put_items(bucket, {"zz": b"\xff\x00"})

    assert cli("keys", bucket).lines == [*keys, "zz"]
    assert cli("keys", bucket, "--prefix", "user:14").lines == keys[1400:]
    assert cli("keys", bucket, "--limit", "3").lines == keys[:3]
    assert cli("keys", bucket, "--values", "--prefix", "z").lines == ["zz\t\\xff\\x00"]
    records = [json.loads(line) for line in cli("--json", "keys", bucket, "--values").lines]
    assert len(records) == 1501
    assert all(record.pop("version").isdigit() for record in records)  # each key's version
    assert records[0] == {"key": "user:0000", "value": "v"}
    assert records[-1] == {"key": "zz", "value": "/wA=", "encoding": "base64"}


TSV_ESCAPE = re.compile(rb"\\(?:x([0-9a-f]{2})|(.))")


def tsv_unescape(field: bytes) -> bytes:
    """The README's rule read back: \\\\ \\t \\n \\r, and \\xHH for the byte HH."""
    named = {b"\\": b"\\", b"t": b"\t", b"n": b"\n", b"r": b"\r"}
    return TSV_ESCAPE.sub(lambda m: bytes([int(m[1], 16)]) if m[1] else named[m[2]], field)


def test_keys_values_tsv_round_trips_tabs_newlines_backslashes_and_bytes(cli, bucket, platform):
    contents = {
        "tab\tkey": b"tab\tvalue",
        "new\nline": b"two\nlines\r\n",
        "back\\slash\\t": b"C:\\new\\table \\x41 \\\\",
        "plain": b"text with spaces",
        "bin": b"\xff\x00\x1b[31m\x7f\xc3",
        "é ✓": "é ✓".encode(),
        "empty": b"",
    }
    platform.put_items(bucket, contents)

    listed = cli("keys", bucket, "--values")
    assert listed.status == 0
    lines = listed.out.split(b"\n")
    assert lines.pop() == b""  # each line ends with a newline, and there is one a key
    assert len(lines) == len(contents)
    read = {}
    for line in lines:
        key, value = line.split(b"\t")  # exactly two columns
        read[tsv_unescape(key).decode()] = tsv_unescape(value)
    assert read == contents
    assert b"\x1b" not in listed.out and b"\r" not in listed.out

    keys_only = cli("keys", bucket).out.split(b"\n")[:-1]
    assert sorted(tsv_unescape(k).decode() for k in keys_only) == sorted(contents)


def test_token_create(cli, bucket, platform):
    result = cli("token", "create", bucket, "--prefix", "user:1:", "--permissions", "read,write")
    token = result.text.strip()
    assert len(token) == 40
    [row] = platform.tokens(bucket)
    assert (row["prefix"], row["can_read"], row["can_write"]) == ("user:1:", True, True)
    assert 3590 < row["expires_at"] - time.time() <= 3600

    both = cli("--token", token, "--api-key", "tdb_x", "get", bucket, "user:1:x")
    assert both.status == 2 and b"give --api-key or --token, not both" in both.err
    assert cli("--token", token, "set", bucket, "user:1:x", "v").status == 0  # beats the env
    refused = cli("--token", token, "get", bucket, "other")
    assert refused.status == 1
    assert b"only covers keys starting with 'user:1:'" in refused.err
    default = json.loads(cli("--json", "token", "create", bucket).out)["token"]
    read_only = [r for r in platform.tokens(bucket) if r["can_read"] and not r["can_write"]]
    assert [r["prefix"] for r in read_only] == [""]
    assert len(default) == 40


# Errors


def test_api_errors_exit_1_with_the_servers_message(cli, bucket, server, monkeypatch, platform):
    big = cli("set", bucket, "big", stdin=b"x" * (1024 * 1024 + 1))
    assert big.status == 1
    assert big.err.startswith(b"error: 413 ")  # the phrase differs between Python versions
    assert b": the value is larger than the limit of 1048576 bytes" in big.err
    bad = cli("set", bucket, "k", "v", "--ttl", "999999999999")
    assert bad.status == 1 and b"400 Bad Request: ttl must be a whole number" in bad.err
    unknown = cli("--json", "get", "A" * 20, "k")
    assert unknown.status == 1
    assert json.loads(unknown.err) == {"error": "bucket not found", "status": 404}
    assert b"Traceback" not in big.err + bad.err + unknown.err

    # 429: the quota is set before the server's first request of this key (it keeps quotas
    # for a few seconds).
    dave = platform.persona("dave")
    platform.set_requests_per_hour(dave, 1)
    monkeypatch.setenv("THISDB_API_KEY", dave.key)
    assert cli("bucket", "create").status == 0
    limited = cli("bucket", "create")
    assert limited.status == 1
    assert b"429 Too Many Requests: rate limit reached: 1 requests per hour" in limited.err
    assert b"the server asks to wait" in limited.err


def test_a_wrong_url_path_is_not_the_api_and_exits_4(cli, bucket, server, monkeypatch):
    """The platform answers a path outside /v1 with an HTML page: a configuration error with
    its own exit status, never `404 Not Found` (exit 1) as if the key were missing."""
    cli("set", bucket, "k", "v")
    monkeypatch.setenv("THISDB_URL", server + "/wrong")
    wrong = cli("get", bucket, "k")
    assert (wrong.status, wrong.out) == (4, b"")
    assert wrong.err.startswith(f"error: {server}/wrong/v1/{bucket}/k answered 404 ".encode())
    assert b"not like a ThisDB v1 API: check the base URL" in wrong.err
    assert b"404 Not Found: " not in wrong.err
    documents = cli("--json", "keys", bucket)
    assert documents.status == 4 and "check the base URL" in json.loads(documents.err)["error"]
    heredoc = script("-c", stdin=f"get {bucket} k\n".encode(), env=dict(os.environ))
    assert heredoc.status == 4


def test_a_binary_value_on_a_terminal_says_how_to_save_it(home, server, carol, tmp_path, platform):
    pexpect = pytest.importorskip("pexpect")  # the test extra
    bucket = platform.new_bucket(carol)
    platform.put_items(bucket, {"png": b"\x89PNG\r\n\x1a\n\x00\xff"})
    env = {**os.environ, "THISDB_URL": server, "THISDB_API_KEY": carol.key, "NO_COLOR": "1"}
    shown = pexpect.spawn(THISDB, ["get", bucket, "png"], env=env, timeout=30)
    shown.expect(pexpect.EOF)
    shown.close()
    said = b" ".join(shown.before.split())  # the terminal wraps long lines
    assert shown.exitstatus == 2
    assert b"the value of 'png' is binary (10 bytes), not shown on a terminal" in said
    assert b"--output FILE" in said and b"--json" in said
    assert b"PNG" not in said.replace(b"'png'", b"")
    saved = tmp_path / "copy.png"
    assert script("get", bucket, "png", "--output", str(saved), env=env).status == 0
    assert saved.read_bytes() == b"\x89PNG\r\n\x1a\n\x00\xff"


# Export and import


def test_export_then_import_gives_identical_contents(home, either_server, carol, platform):
    """With the bulk routes, and through the fallbacks of a server without them."""
    env = {**os.environ, "THISDB_URL": either_server, "THISDB_API_KEY": carol.key}
    source = script("bucket", "create", env=env).text.strip()
    contents = {f"k{n:04d}": f"value {n}".encode() for n in range(100)}
    contents |= {
        "bin": bytes(range(256)),
        "empty": b"",
        "lines": b"a\nb\r\n\tc",
        "a/b?c#d e%": "é ✓".encode(),
        "..": b"\xff",
        "multi\nline key": b"x",
    }
    now = time.time()
    expiries = {k: now + 60 + n * 37.3 if n % 3 else None for n, k in enumerate(contents)}
    platform.put_items(source, contents, expiries)
    dump = home / "dump.ndjson"

    started = time.monotonic()
    with dump.open("wb") as file:
        exported = subprocess.run([THISDB, "export", source], stdout=file, env=env, timeout=60)
    assert exported.returncode == 0
    target = script("bucket", "create", env=env).text.strip()
    with dump.open("rb") as file:
        imported = subprocess.run(
            [THISDB, "import", target], stdin=file, capture_output=True, env=env, timeout=120
        )
    took = time.monotonic() - started

    assert imported.returncode == 0, imported.stderr
    assert imported.stdout == f"imported 106 keys into {target}\n".encode()
    assert platform.stored(target) == contents
    records = [json.loads(line) for line in dump.read_bytes().splitlines()]
    everything = base64.b64encode(bytes(range(256))).decode()
    by_key = {record["key"]: record for record in records}
    assert {k: v for k, v in by_key["bin"].items() if k not in ("ttl", "exported_at")} == {
        "key": "bin",
        "value": everything,
        "encoding": "base64",
    }
    assert by_key["lines"]["value"] == "a\nb\r\n\tc"
    # Remaining TTLs travel with the keys (0: never expires), within a second; a copy may
    # expire later by up to the time the copy took (a line's ttl is reckoned when it is read,
    # and one write a key writes it up to a batch later).
    copied = platform.expiries(target)
    for key, expires_at in expiries.items():
        if expires_at is None:
            assert by_key[key]["ttl"] == 0 and copied[key] is None, key
        else:
            assert expires_at - 1 < copied[key] < expires_at + 1 + took, key


def test_import_skips_keys_that_expired_since_the_export(cli, bucket, tmp_path, platform):
    dump = tmp_path / "old.ndjson"
    exported = time.time() - 100
    dump.write_text(
        f'{{"key": "gone", "value": "1", "ttl": 60, "exported_at": {exported}}}\n'
        f'{{"key": "left", "value": "2", "ttl": 3600, "exported_at": {exported}}}\n'
    )
    started = time.time()
    result = cli("import", bucket, "--file", str(dump))
    assert result.status == 0, result.err
    assert (
        result.text == f"imported 1 keys into {bucket} (skipped 1 that expired since the export)\n"
    )
    expiry = platform.expiries(bucket)
    assert abs(expiry["left"] - started - 3500) < 1
    assert "gone" not in expiry


def test_import_gives_each_record_its_ttl_and_refuses_a_malformed_line(
    cli, bucket, tmp_path, platform
):
    dump = tmp_path / "ttls.ndjson"
    dump.write_text(
        '{"key": "hour", "value": "1", "ttl": 3600}\n'
        '{"key": "never", "value": "2", "ttl": 0}\n'
        "\n"
        '{"key": "plain", "value": "3"}\n'
        '{"key": "bin", "value": "/wA=", "encoding": "base64"}\n'
    )
    started = time.time()
    result = cli("import", bucket, "--file", str(dump), "--ttl", "60")
    assert result.status == 0, result.err
    assert result.text == f"imported 4 keys into {bucket}\n"
    expiry = platform.expiries(bucket)
    assert abs(expiry["hour"] - started - 3600) < 1
    assert expiry["never"] is None
    assert abs(expiry["plain"] - started - 60) < 1
    assert platform.stored(bucket)["bin"] == b"\xff\x00"

    bad = cli("import", bucket, stdin=b'{"key":"a","value":"1"}\nnot json\n')
    assert bad.status == 2
    assert b"error: line 2: not JSON\n" in bad.err
    assert f"thisdb import {bucket} - --skip 1 < FILE\n".encode() in bad.err
    assert platform.stored(bucket)["a"] == b"1"


def test_import_keeps_one_write_per_second_per_key(
    home, older_server, carol, monkeypatch, platform
):
    """One write a key (a server without the bulk routes): the second write of k waits out
    the server's one write per second per key."""
    monkeypatch.setenv("THISDB_URL", older_server)
    monkeypatch.setenv("THISDB_API_KEY", carol.key)
    bucket = run_main(monkeypatch, ["bucket", "create"]).text.strip()
    lines = b'{"key":"k","value":"first"}\n{"key":"o","value":"x"}\n{"key":"k","value":"last"}\n'

    started = time.monotonic()
    result = run_main(monkeypatch, ["import", bucket], stdin=lines)

    assert result.status == 0, result.err
    assert time.monotonic() - started >= 0.9  # k waited for its second
    assert platform.stored(bucket) == {"k": b"last", "o": b"x"}


def test_a_key_twice_in_an_import_is_not_refused_by_the_per_key_limit(
    with_bulk_routes, home, strict_server, carol, monkeypatch, platform
):
    """An NDJSON import does not claim one write per second per key (README, "Imports"): a
    key on two lines of a batch is written once, with the later line, at once."""
    monkeypatch.setenv("THISDB_URL", strict_server)
    monkeypatch.setenv("THISDB_API_KEY", carol.key)
    bucket = run_main(monkeypatch, ["bucket", "create"]).text.strip()
    lines = b'{"key":"k","value":"first"}\n{"key":"o","value":"x"}\n{"key":"k","value":"last"}\n'

    result = run_main(monkeypatch, ["import", bucket], stdin=lines)

    assert result.status == 0, result.err
    assert result.text == f"imported 3 keys into {bucket}\n"
    assert platform.stored(bucket) == {"k": b"last", "o": b"x"}


def test_import_stops_at_the_hourly_limit_and_says_where(
    older_server, cli, carol, platform, monkeypatch
):
    """One write a key (a server without the bulk routes): the first request (an NDJSON import,
    which the server refuses) and k0 are the two requests of the hour; k1 is refused."""
    monkeypatch.setenv("THISDB_URL", older_server)
    platform.set_requests_per_hour(carol, 2)
    bucket = platform.new_bucket(carol)
    lines = b"".join(b'{"key":"k%d","value":"v"}\n' % n for n in range(5))

    result = cli("import", bucket, stdin=lines)

    assert result.status == 1
    assert sorted(platform.stored(bucket)) == ["k0"]
    assert b"rate limit reached: 2 requests per hour" in result.err
    assert b"imported 1 keys into" in result.err
    assert f"thisdb import {bucket} - --skip 1 < FILE\n".encode() in result.err
    again = cli("--json", "import", bucket, stdin=lines)
    assert json.loads(again.out) == {"imported": 0, "stopped_at_line": 1, "skip": 0}


def test_the_resume_command_repeats_the_imports_options(home, server, carol, tmp_path, platform):
    """Stopped at a malformed line, the import prints a command with its own --url, --profile,
    --ttl and --max-wait; once the line is mended, that command, run as printed, writes the
    rest."""
    ConfigFile.load().save_profile("work", server, carol.key, make_default=False)
    bucket = platform.new_bucket(carol)
    records = [b'{"key":"k%d","value":"v"}\n' % n for n in range(6)]
    dump = tmp_path / "my dump.ndjson"
    dump.write_bytes(b"".join([*records[:3], b"{broken\n", *records[4:]]))
    env = {**os.environ, "HOME": str(home)}
    args = ["--url", server, "--profile", "work", "import", bucket, "--file", str(dump)]
    first = script(*args, "--ttl", "600", "--max-wait", "0.5", env=env)

    assert first.status == 2
    assert sorted(platform.stored(bucket)) == ["k0", "k1", "k2"]
    command = (
        f"thisdb --url {server} --profile work import {bucket} '{dump}' "
        "--ttl 600 --max-wait 0.5 --skip 3"
    )
    assert f"then stopped at line 4; to go on from there:\n  {command}\n".encode() in first.err

    dump.write_bytes(b"".join(records))
    resumed = subprocess.run(
        command, shell=True, capture_output=True, timeout=60,
        env={**env, "PATH": os.path.dirname(THISDB) + os.pathsep + env["PATH"]},
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == f"imported 3 keys into {bucket}\n".encode()
    assert platform.stored(bucket) == {f"k{n}": b"v" for n in range(6)}
    assert 590 < platform.expiries(bucket)["k5"] - time.time() <= 600


def test_ctrl_c_during_an_import_prints_the_command_to_go_on(
    home, older_server, carol, tmp_path, platform
):
    """Interrupted, the import says how far it got and the command that goes on from the first
    line not known to be written (that line again: writing it twice is harmless). One write a
    key (a server without the bulk routes), each waiting for its second (the per-key rule): an
    import slow enough to interrupt."""
    bucket = platform.new_bucket(carol)
    # One key written over and over: the one-write-per-second rule makes each line wait.
    lines = [b'{"key":"k","value":"%d"}\n' % n for n in range(10)] + [
        b'{"key":"end","value":"x"}\n'
    ]
    dump = tmp_path / "dump.ndjson"
    dump.write_bytes(b"".join(lines))
    env = {**os.environ, "HOME": str(home)}
    process = subprocess.Popen(
        [THISDB, "--url", older_server, "--api-key", carol.key, "--timeout", "20",
         "import", bucket, "--file", str(dump), "--ttl", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while platform.stored(bucket).get("k") != b"1":
        assert time.monotonic() < deadline, "the import did not start"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)

    assert process.returncode == 130
    assert b"Traceback" not in err
    said = re.search(
        rb"imported (\d+) keys into \w+, interrupted at line (\d+); to go on from there:\n"
        rb"  thisdb --url (\S+) --api-key KEY --timeout 20 import (\w+) (\S+) --ttl 0 "
        rb"--skip (\d+)\n  \(KEY: the API key you gave, not printed here\)\n",
        err,
    )
    assert said, err
    imported, line, skip = int(said[1]), int(said[2]), int(said[6])
    assert (said[3], said[4], said[5]) == (
        older_server.encode(),
        bucket.encode(),
        str(dump).encode(),
    )
    # At least k's first write is known; its second is stored, but its answer may not have
    # reached the client before the interrupt: then that line is the one to go on from.
    assert line == skip + 1 == imported + 1 and imported >= 1
    assert carol.key.encode() not in err

    # As printed, with the key in place of KEY: the rest comes in, the last value of k last.
    command = said[0].decode().splitlines()[1].strip().replace(" KEY ", f" {carol.key} ")
    time.sleep(1)
    resumed = subprocess.run(
        command, shell=True, capture_output=True, timeout=120,
        env={**env, "PATH": os.path.dirname(THISDB) + os.pathsep + env["PATH"]},
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert platform.stored(bucket) == {"k": b"9", "end": b"x"}


# thisdb -c


def test_commands_from_a_heredoc(home, server, carol, platform):
    env = {**os.environ, "THISDB_URL": server, "THISDB_API_KEY": carol.key}
    bucket = script("bucket", "create", env=env).text.strip()
    commands = f"""
        # one command a line, as in the shell
        use {bucket}
        set greeting 'hello world'
        set --ttl 0 "two words" x
        get greeting
        incr visits 5
        keys
        get {bucket} greeting
    """.encode()

    result = script("-c", stdin=commands, env=env)

    assert result.status == 2  # the last line names the bucket again: too many arguments
    assert result.lines == ["OK", "OK", "hello world", "5", "greeting", "two words", "visits"]
    assert b"stopped at line 9" in result.err
    assert platform.stored(bucket) == {
        "greeting": b"hello world",
        "two words": b"x",
        "visits": b"5",
    }

    api_error = f"set {bucket} a 1\nget {bucket} missing\nset {bucket} b 2\n".encode()
    result = script("--json", "-c", stdin=api_error, env=env)
    assert result.status == 1
    assert result.lines == ['{"result": "OK"}']
    assert json.loads(result.err.splitlines()[0]) == {"error": "key not found", "status": 404}
    assert "b" not in platform.stored(bucket)
