"""The `thisdb` tool before or without a server: usage errors (exit 2), the network failing
(exit 3), and never a traceback."""

import os

from tests.clients.conftest import run_main, script

BUCKET = "A" * 20


def test_usage_errors_exit_2(home, monkeypatch):
    monkeypatch.setenv("THISDB_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("THISDB_API_KEY", "tdb_x")

    def cli(*args):
        return run_main(monkeypatch, list(args))

    missing = cli("get", BUCKET)
    assert missing.status == 2 and b"Missing argument 'KEY'" in missing.err
    assert cli("incr", BUCKET, "n", "many").status == 2
    assert b"cannot be empty" in cli("get", BUCKET, "").err
    assert b"give VALUE or --file, not both" in cli("set", BUCKET, "k", "v", "--file", "x").err
    assert cli("nonsense").status == 2
    assert cli("--json", "get", BUCKET).err.startswith(b'{"error": "Missing argument')
    unwritable = cli("export", BUCKET, "--output", str(home / "no" / "such" / "folder"))
    assert unwritable.status == 2 and b"cannot write" in unwritable.err
    monkeypatch.delenv("THISDB_URL")
    unset = cli("get", BUCKET, "k")
    assert unset.status == 2 and b"no server: pass --url" in unset.err

    home.joinpath("config", "thisdb").mkdir(parents=True)
    home.joinpath("config", "thisdb", "config.toml").write_text("profiles = [")
    broken = cli("bucket", "list")
    assert broken.status == 2 and b"is not valid TOML" in broken.err


def test_network_errors_exit_3_without_a_traceback(home):
    env = {**os.environ, "THISDB_URL": "http://127.0.0.1:9", "THISDB_API_KEY": "tdb_x"}
    result = script("get", BUCKET, "k", env=env)
    assert result.status == 3
    assert result.err.startswith(f"error: GET http://127.0.0.1:9/v1/{BUCKET}/k: ".encode())
    assert b"Traceback" not in result.err

    heredoc = script("-c", stdin=f"del {BUCKET} k\n".encode(), env=env)
    assert heredoc.status == 3
    assert b"Traceback" not in heredoc.err
