"""The `thisdb` tool before or without a server: usage errors (exit 2), the network failing
(exit 3), and never a traceback; and a stand-in for a server without the bucket listing."""

import json
import os

from stand_in import answering
from thisdb.cli.config import ConfigFile
from tool_runs import run_main, script

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


OLD = (405, {"Allow": "POST", "Content-Type": "application/json"}, b'{"error": "not allowed"}')


def test_bucket_list_falls_back_to_the_profile_on_a_server_without_the_listing(home, monkeypatch):
    """A server of the published v1 API answers GET /v1/ with 405: `bucket list` shows the
    buckets created with the tool under the profile, and says so on stderr."""
    made = [(200, {"Content-Type": "text/plain"}, (c * 20).encode()) for c in "BC"]
    seen: list[tuple[str, str]] = []
    with answering([*made, OLD, OLD, OLD], seen) as url:
        config = ConfigFile.load()
        config.save_profile("default", url, "tdb_x", make_default=True)
        assert run_main(monkeypatch, ["bucket", "create"]).text == "B" * 20 + "\n"
        assert run_main(monkeypatch, ["bucket", "create"]).status == 0
        assert ConfigFile.load().buckets("default") == ["B" * 20, "C" * 20]

        listed = run_main(monkeypatch, ["bucket", "list"])
        assert (listed.status, listed.lines) == (0, ["B" * 20, "C" * 20])
        assert b"the server cannot list buckets" in listed.err
        assert b"405" in listed.err
        assert b"these are the 2 bucket(s) created with this tool under profile 'default'" in (
            listed.err
        )

        documents = run_main(monkeypatch, ["--json", "bucket", "list"])
        assert documents.status == 0
        assert [json.loads(line) for line in documents.lines] == [
            {"bucket": "B" * 20},
            {"bucket": "C" * 20},
        ]
        warning = json.loads(documents.err)["warning"]
        assert warning.startswith(f"the server cannot list buckets ({url}/v1/ answered 405)")

        config.path.unlink()  # settings from the environment, no profile: nothing remembered
        monkeypatch.setenv("THISDB_URL", url)
        monkeypatch.setenv("THISDB_API_KEY", "tdb_x")
        nothing = run_main(monkeypatch, ["bucket", "list"])
        assert (nothing.status, nothing.out) == (0, b"")
        assert b"and no profile remembers any: run `thisdb login`" in nothing.err
    assert seen[:2] == [("POST", "/v1/"), ("POST", "/v1/")]
    assert seen[2:] == [("GET", "/v1/?format=json")] * 3


def test_a_proxy_page_is_never_printed_as_a_value(home):
    """A proxy's 200 HTML page (a login portal) in place of the API: exit 4, nothing on stdout."""
    page = (200, {"Content-Type": "text/html"}, b"<html>Sign in to the network</html>")
    with answering([page, page]) as url:
        env = {**os.environ, "THISDB_URL": url, "THISDB_API_KEY": "tdb_x"}
        result = script("get", BUCKET, "k", env=env)
        listed = script("--json", "keys", BUCKET, env=env)
    assert (result.status, result.out) == (4, b"")
    assert b"answered 200 OK in text/html, not like a ThisDB v1 API" in result.err
    assert (listed.status, listed.out) == (4, b"")


def test_use_of_an_empty_bucket_is_a_usage_error(home):
    env = {**os.environ, "THISDB_URL": "http://127.0.0.1:9", "THISDB_API_KEY": "tdb_x"}
    result = script("-c", stdin=b"use ''\nuse\n", env=env)
    assert result.status == 2
    assert (
        result.err == b"error: use BUCKET: an empty bucket cannot be current\nstopped at line 1\n"
    )
    assert script("-c", stdin=b'use "" other\n', env=env).status == 2


def test_help_in_the_shell_lists_what_the_shell_runs(home):
    env = {**os.environ, "THISDB_URL": "http://127.0.0.1:9", "THISDB_API_KEY": "tdb_x"}
    result = script("-c", stdin=b"help\n", env=env)
    assert result.status == 0
    commands = [
        line.split()[0] for line in result.lines if line.startswith("  ") and line[2] != " "
    ]
    assert "login" not in commands and "shell" not in commands
    assert {"get", "set", "keys", "bucket", "import", "use", "help", "exit"} <= set(commands)
    assert "--api-key" not in result.text  # the tool's own options do not apply to a line
    refused = script("-c", stdin=b"help login\n", env=env)
    assert refused.status == 2 and b"`login` is not available in the shell" in refused.err
    one = script("-c", stdin=b"help incr\n", env=env)
    assert one.status == 0 and "Usage: thisdb incr [OPTIONS] BUCKET KEY [BY]" in one.text


def test_the_help_names_the_profile_file_where_it_is(home, tmp_path):
    folder = tmp_path / "xdg"
    env = {**os.environ, "XDG_CONFIG_HOME": str(folder)}

    def unwrapped(text: str) -> str:  # the help is wrapped at spaces and hyphens
        return "".join(text.split())

    shown = unwrapped(script("--help", env=env).text)
    assert unwrapped(f"profile file ({folder}/thisdb/config.toml, written by") in shown
    unset = {k: v for k, v in env.items() if k != "XDG_CONFIG_HOME"}
    shown = unwrapped(script("--help", env=unset).text)
    assert unwrapped(f"profile file ({home}/.config/thisdb/config.toml, written by") in shown
