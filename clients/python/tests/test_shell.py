"""`thisdb shell` in a pseudo-terminal: one session with `use`, tab completion of commands and
of the bucket's keys, output, an error that does not end the session, and the history file."""

import os

import pytest
from tool_runs import THISDB

pexpect = pytest.importorskip("pexpect")  # the test extra


def test_a_shell_session(home, server, carol, platform):
    bucket = platform.new_bucket(carol)
    platform.put_items(bucket, {"user:alice": b"Alice A.", "colour": b"teal"})
    env = {
        **os.environ,
        "THISDB_URL": server,
        "THISDB_API_KEY": carol.key,
        "TERM": "xterm",
        "NO_COLOR": "1",
        "PROMPT_TOOLKIT_NO_CPR": "1",  # do not wait for the terminal's cursor-position report
    }
    shell = pexpect.spawn(
        THISDB, ["shell"], env=env, dimensions=(40, 200), encoding="utf-8", timeout=15
    )
    try:
        shell.expect("Type help, or exit")
        shell.expect("thisdb>")
        shell.send(f"use {bucket}\r")
        shell.expect(f"thisdb:{bucket}>")

        shell.send("ge\t")  # completes the command
        shell.expect("get")
        shell.send(" user:a\t")  # completes the key from the bucket's listing
        shell.expect("user:alice")
        shell.send("\r")
        shell.expect("Alice A.")
        shell.expect(f"thisdb:{bucket}>")

        shell.send("set greeting 'hello, shell'\r")
        shell.expect("OK")
        shell.send("incr visits 3\r")
        shell.expect("3")
        shell.send("get missing\r")
        shell.expect("404 Not Found: key not found")
        shell.expect(f"thisdb:{bucket}>")  # the session goes on

        shell.send("keys --values\r")
        shell.expect("colour +teal")
        shell.expect("greeting +hello, shell")
        shell.expect("user:alice +Alice A.")
        shell.expect("visits +3")
        shell.expect(f"thisdb:{bucket}>")

        shell.send("bucket list\r")  # the account's buckets, from the server, as a table
        shell.expect("bucket.+default ttl.+keys.+bytes")  # bold: escapes between
        shell.expect(f"{bucket} +7d +0 +0")
        shell.expect(f"thisdb:{bucket}>")
        shell.send("exit\r")
        shell.expect(pexpect.EOF)
    finally:
        shell.close()

    assert shell.exitstatus == 0
    stored = platform.stored(bucket)
    assert stored["greeting"] == b"hello, shell"
    assert stored["visits"] == b"3"
    history = (home / "state" / "thisdb" / "history").read_text()
    assert f"+use {bucket}\n" in history
    assert "+get user:alice\n" in history


def test_a_usage_error_in_the_shell_leaves_it_open(home, server, carol, platform):
    env = {
        **os.environ,
        "THISDB_URL": server,
        "THISDB_API_KEY": carol.key,
        "TERM": "xterm",
        "NO_COLOR": "1",
        "PROMPT_TOOLKIT_NO_CPR": "1",
    }
    shell = pexpect.spawn(
        THISDB, ["shell"], env=env, dimensions=(40, 200), encoding="utf-8", timeout=15
    )
    try:
        shell.expect("thisdb>")
        shell.send("use ''\r")
        shell.expect("use BUCKET: an empty bucket cannot be current")
        shell.expect("thisdb>")  # the session goes on
        shell.send("help\r")
        shell.expect("Commands:")
        shell.expect("In the shell:")
        listed = shell.before
        shell.expect("thisdb>")
        shell.send("bucket create\r")
        shell.expect(r"([A-Za-z0-9]{20})\r\n")
        made = shell.match.group(1)
        shell.send("exit\r")
        shell.expect(pexpect.EOF)
    finally:
        shell.close()
    assert shell.exitstatus == 0
    assert "Traceback" not in shell.before
    assert "  login" not in listed and "  shell" not in listed and "  get " in listed
    assert platform.bucket(made)["owner"] == carol.username
