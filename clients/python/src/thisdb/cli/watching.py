"""`thisdb watch`: the changes under a prefix as they happen, one line an event, until Ctrl-C
(which says the position to go on from) or until the server ends the watch."""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any

import click

from thisdb import _core
from thisdb.cli.output import Output, shown_value, tsv_field
from thisdb.cli.state import State
from thisdb.errors import ThisDBError
from thisdb.models import Delete, Event, Put, Reset


def event_record(event: Event) -> dict[str, Any]:
    """An event in the API's JSON (the long-poll's shape): `id` (None for the keys of a
    snapshot but its last), `type`, and its fields; a value that is not UTF-8 in base64."""
    record: dict[str, Any] = {"id": event.position, "type": event.type}
    if isinstance(event, Put):
        record["key"] = event.key
        record.update(_core.encode_value(event.value))
        record.update(version=event.version, ttl=event.ttl)
    elif isinstance(event, Delete):
        record.update(key=event.key, version=event.version, reason=event.reason)
    else:
        record["reason"] = event.reason
    return record


def event_line(event: Event, terminal: bool) -> str:
    """An event for people, on one line: `42 put KEY = VALUE`, `43 delete KEY (deleted)`,
    `57 reset: list again` (`-` where there is no position: the keys of a snapshot but its
    last). Keys and values are escaped as `keys` writes them, so each event is one line; on a
    terminal a value is shown shortened, or as <binary, N bytes>."""
    position = event.position or "-"
    if isinstance(event, Put):
        value = shown_value(event.value) if terminal else tsv_field(event.value)
        return f"{position} put {tsv_field(event.key)} = {value}"
    if isinstance(event, Delete):
        return f"{position} delete {tsv_field(event.key)} ({event.reason})"
    if isinstance(event, Reset) and event.reason == "snapshot":
        return f"{position} reset: the snapshot was cut off and starts again"
    return f"{position} reset: list again"


def watch_prefix(
    state: State, bucket: str, prefix: str, since: str | None, snapshot: bool, as_json: bool
) -> None:
    out = state.output
    kept, out.json = out.json, out.json or as_json  # the command's --json, for this run only
    try:
        _watch(state, out, bucket, prefix, since, snapshot)
    finally:
        out.json = kept


def _watch(
    state: State, out: Output, bucket: str, prefix: str, since: str | None, snapshot: bool
) -> None:
    watch = None
    try:
        watch = state.client().watch(bucket, prefix, since, snapshot)
        with watch:
            for event in watch:
                if out.json:
                    out.data(event_record(event))
                else:
                    out.line(event_line(event, out.stdout_is_terminal))
                sys.stdout.flush()  # each event as it comes, into a pipe too
    except KeyboardInterrupt:
        # Ctrl-C is how a watch ends: quietly, saying where it stopped so it can go on.
        _stopped(state, out, bucket, prefix, watch.position if watch else None)
    except ThisDBError as exc:
        click.get_current_context().exit(out.error(exc))


def _stopped(state: State, out: Output, bucket: str, prefix: str, position: str | None) -> None:
    if out.json:
        sys.stderr.write(json.dumps({"position": position}) + "\n")
        return
    if position is None:
        out.err.print("stopped before the watch began", markup=False)
        return
    words = ["thisdb", *state.options, "watch", bucket, *([prefix] if prefix else [])]
    command = shlex.join([*words, "--since", position])
    out.err.print(
        f"\nstopped at position {position}; to go on from there:\n  {command}", markup=False
    )
