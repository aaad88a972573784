"""`thisdb watch` against a stand-in stream of Server-Sent Events: its lines for people and
its JSON, Ctrl-C (exit 0, the position to go on from on stderr), the server ending the watch,
refusals, and the shell."""

import json
import os
import signal
import subprocess

from event_stream import block, delete, opening, put, query
from stand_in import DROP, Seen, streaming
from tool_runs import THISDB, run_main

BUCKET = "B" * 20
JSON = {"Content-Type": "application/json"}
CANCEL = block(event="cancel", data={"reason": "revoked"})
BINARY = {"key": "bin", "value": "/w==", "encoding": "base64", "version": "4", "ttl": 0}


def events() -> list[bytes]:
    return [
        opening(41),
        put(42, "p1", "v"),
        block(43, "put", BINARY),
        delete(44, "p1", "5", "expired"),
        block(57, "reset", {"reason": "history"}),
        put(58, "p 2\tx", "two\nlines", "6", 60),
    ]


def test_one_line_an_event_until_the_server_ends_the_watch(home, monkeypatch):
    sent: list[Seen] = []
    with streaming([[*events(), CANCEL]], sent) as url:
        monkeypatch.setenv("THISDB_URL", url)
        monkeypatch.setenv("THISDB_API_KEY", "tdb_x")
        result = run_main(monkeypatch, ["watch", BUCKET, "p", "--since", "41"])
    assert result.lines == [
        "42 put p1 = v",
        "43 put bin = \\xff",
        "44 delete p1 (expired)",
        "57 reset: list again",
        "58 put p 2\\tx = two\\nlines",
    ]
    assert result.status == 1
    assert result.err.decode() == "error: the server ended the watch: revoked\n"
    assert query(sent[0]) == {"watch": "true", "prefix": "p", "since": "41"}


def test_json_prints_the_events_of_the_long_poll_one_a_line(home, monkeypatch):
    snapshot = [opening(40), put(None, "a", "x"), put(41, "b", "y", "2", 9)]
    with streaming([snapshot + events()[1:] + [CANCEL]]) as url:
        monkeypatch.setenv("THISDB_URL", url)
        monkeypatch.setenv("THISDB_API_KEY", "tdb_x")
        result = run_main(monkeypatch, ["watch", BUCKET, "--snapshot", "--json"])
    records = [json.loads(line) for line in result.lines]
    assert records == [
        {"id": None, "type": "put", "key": "a", "value": "x", "version": "1", "ttl": 0},
        {"id": "41", "type": "put", "key": "b", "value": "y", "version": "2", "ttl": 9},
        {"id": "42", "type": "put", "key": "p1", "value": "v", "version": "1", "ttl": 0},
        {"id": "43", "type": "put", **BINARY},
        {"id": "44", "type": "delete", "key": "p1", "version": "5", "reason": "expired"},
        {"id": "57", "type": "reset", "reason": "history"},
        {
            "id": "58",
            "type": "put",
            "key": "p 2\tx",
            "value": "two\nlines",
            "version": "6",
            "ttl": 60,
        },
    ]
    assert result.status == 1
    assert json.loads(result.err) == {"error": "the server ended the watch: revoked"}


def _interrupted(json_mode: bool) -> tuple[list[bytes], int, bytes, bytes]:
    """`thisdb watch` in a process of its own, given SIGINT after two events (the second after
    a dropped connection): the two lines, and the exit status, stdout and stderr after."""
    connections = [[opening(41), put(42, "p1"), DROP], [opening(42), delete(43, "p1")]]
    with streaming(connections) as url:
        env = {**os.environ, "THISDB_URL": url, "THISDB_API_KEY": "tdb_x"}
        watcher = subprocess.Popen(
            [THISDB, "--timeout", "5", "watch", BUCKET, "p", *(["--json"] * json_mode)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            got = [watcher.stdout.readline(), watcher.stdout.readline()]
            watcher.send_signal(signal.SIGINT)
            out, err = watcher.communicate(timeout=30)
        finally:
            watcher.kill()
    return got, watcher.returncode, out, err


def test_ctrl_c_ends_quietly_with_the_position_to_go_on_from(home):
    got, status, out, err = _interrupted(json_mode=False)
    assert got == [b"42 put p1 = v\n", b"43 delete p1 (deleted)\n"]
    assert (status, out) == (0, b"")
    assert err.decode().strip().splitlines() == [
        "stopped at position 43; to go on from there:",
        f"  thisdb --timeout 5 watch {BUCKET} p --since 43",
    ]

    got, status, out, err = _interrupted(json_mode=True)
    assert [json.loads(line)["id"] for line in got] == ["42", "43"]
    assert (status, out) == (0, b"")
    assert json.loads(err) == {"position": "43"}


def test_refusals_and_bad_positions(home, monkeypatch):
    refused = (404, JSON, b'{"error": "bucket not found"}')
    with streaming([refused]) as url:
        monkeypatch.setenv("THISDB_URL", url)
        monkeypatch.setenv("THISDB_API_KEY", "tdb_x")
        missing = run_main(monkeypatch, ["watch", BUCKET])
        assert (missing.status, missing.err) == (1, b"error: 404 Not Found: bucket not found\n")
        bad = run_main(monkeypatch, ["watch", BUCKET, "--since", "soon"])
        assert bad.status == 2 and b"not a position: 'soon'" in bad.err


def test_the_shell_watches_the_current_bucket(home, monkeypatch):
    listed = (200, JSON, b'{"items": [], "next_cursor": null}')
    sent: list[Seen] = []
    with streaming([listed, [opening(1), put(2, "user:1"), CANCEL]], sent) as url:
        monkeypatch.setenv("THISDB_URL", url)
        monkeypatch.setenv("THISDB_API_KEY", "tdb_x")
        lines = f"use {BUCKET}\nwatch user: --json\nget never-run\n".encode()
        result = run_main(monkeypatch, ["-c"], stdin=lines)
    assert [json.loads(line)["key"] for line in result.lines] == ["user:1"]
    assert result.status == 1 and b"stopped at line 2" in result.err
    assert query(sent[1]) == {"watch": "true", "prefix": "user:"}
