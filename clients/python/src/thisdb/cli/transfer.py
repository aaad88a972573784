"""`thisdb export` and `thisdb import`: a bucket as NDJSON, one key a line.

    {"key": "user:1", "value": "alice"}
    {"key": "blob", "value": "AAEC/w==", "encoding": "base64"}
    {"key": "session", "value": "x", "ttl": 3600, "exported_at": 1795400000.25}

Values are text when they are UTF-8, else base64 (the API's own JSON shape). A record may carry
"ttl", the key's remaining seconds (0: never expires), as the server's JSON listing reports it,
with "exported_at" (Unix time) saying when: import then gives the key what is left of it, so a
copy expires when the original does (within a second); a key that expired meanwhile is skipped.
Records without "ttl" get --ttl, else the bucket's default ttl. Import writes the keys one by
one, keeps the API's one write per second per key (a key written again within the second
waits), waits out a 429 the server asks at most --max-wait seconds for, and otherwise stops;
stopped (or interrupted by Ctrl-C) it prints the command that goes on from the first line not
known to be written, with the options it was given.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from thisdb import _core
from thisdb.cli.options import given_options
from thisdb.cli.output import INTERRUPTED, Output, value_record
from thisdb.cli.state import State
from thisdb.client import Client
from thisdb.errors import RateLimited, ThisDBError

WRITE_INTERVAL = 1.0  # the API takes one write per key per second


@contextmanager
def progress(out: Output, description: str, total: int | None) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr when it is a terminal; yields the function that counts one."""
    if not out.err.is_terminal:
        yield lambda: None
        return
    columns: list[ProgressColumn | str] = [SpinnerColumn(), TextColumn(description)]
    if total:
        columns += [BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    else:
        columns += [TextColumn("{task.completed} keys"), TimeElapsedColumn()]
    with Progress(*columns, console=out.err, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


def export_bucket(state: State, bucket: str, prefix: str, output_file: Path | None) -> None:
    client = state.client()
    out = state.output
    try:
        stream: IO[bytes] = output_file.open("wb") if output_file else sys.stdout.buffer
    except OSError as exc:
        raise click.UsageError(f"cannot write {output_file}: {exc.strerror}") from None
    count = 0
    try:
        with progress(out, f"exporting {bucket}", None) as advance:
            for item in client.iter_keys(bucket, prefix or None, values=True):
                record: dict[str, Any] = value_record(item.key, item.value or b"")
                if item.ttl is not None:
                    record["ttl"] = item.ttl
                    if item.ttl:
                        record["exported_at"] = round(time.time(), 3)
                stream.write(_core.dumps_json(record) + b"\n")
                count += 1
                advance()
        stream.flush()
    finally:
        if output_file:
            stream.close()
    out.note(f"exported {count} keys from {bucket}")


class BadRecord(click.UsageError):
    pass


EXPIRED = -1  # parse_record's ttl for a key that expired since it was exported


def parse_record(line: bytes, number: int) -> tuple[str, bytes, int | None]:
    """The key, value and ttl of one NDJSON line: None if absent, what is left of it now if the
    record says when it was exported, EXPIRED if nothing is."""
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise BadRecord(f"line {number} is not JSON") from None
    if not isinstance(record, dict) or not isinstance(record.get("key"), str) or not record["key"]:
        raise BadRecord(f'line {number}: expected {{"key": ..., "value": ...}}')
    try:
        value = _core.decode_value(record)
    except ValueError as exc:
        raise BadRecord(f"line {number}: {exc}") from None
    ttl = record.get("ttl")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0):
        raise BadRecord(f"line {number}: ttl must be a whole number of seconds >= 0")
    exported_at = record.get("exported_at")
    if ttl and exported_at is not None:
        if isinstance(exported_at, bool) or not isinstance(exported_at, int | float):
            raise BadRecord(f"line {number}: exported_at must be a Unix time in seconds")
        left = ttl - (time.time() - exported_at)
        # Whole seconds, rounded down: the listing rounded up, so the copy stays within a second.
        ttl = int(left) if left >= 1 else EXPIRED
    return record["key"], value, ttl


def _count_lines(stream: IO[bytes]) -> int | None:
    """Lines of a file that can be read twice (a file, or stdin redirected from one)."""
    try:
        if not stream.seekable():
            return None
        start = stream.tell()
        count = sum(chunk.count(b"\n") for chunk in iter(lambda: stream.read(1 << 20), b""))
        stream.seek(start)
        return count
    except OSError:
        return None


class _Writer:
    """Writes keys one by one within the write rule and the caller's patience."""

    def __init__(self, client: Client, bucket: str, max_wait: float, out: Output):
        self.client, self.bucket, self.max_wait, self.out = client, bucket, max_wait, out
        self.recent: dict[str, float] = {}  # key -> when it was last written (monotonic)

    def write(self, key: str, value: bytes, ttl: int | None) -> None:
        last = self.recent.get(key)
        if last is not None:
            time.sleep(max(0.0, last + WRITE_INTERVAL - time.monotonic()))
        while True:
            try:
                self.client.set(self.bucket, key, value, ttl)
                break
            except RateLimited as exc:
                wait = exc.retry_after
                if wait is None or wait > self.max_wait:
                    raise
                if wait > 1:
                    self.out.note(f"the server asks to wait {wait:g} s: waiting")
                time.sleep(wait)
        now = time.monotonic()
        self.recent[key] = now
        if len(self.recent) > 10_000:
            self.recent = {k: t for k, t in self.recent.items() if now - t < WRITE_INTERVAL}


def _stopped(
    state: State, bucket: str, input_file: str | None, imported: int, line: int, what: str
) -> None:
    """Say how far an import got and the command that goes on from `line`: the same options as
    this one (--url, --profile, --ttl, ...), with the file's lines from there on stdin. A key
    or token given as an option is not printed: the command names it KEY or TOKEN."""
    source = "FILE" if input_file in (None, "-") else shlex.quote(str(input_file))
    options = given_options(click.get_current_context(), leave_out=("input_file",))
    command = shlex.join(["thisdb", *state.options, "import", bucket, *options])
    text = (
        f"imported {imported} keys into {bucket}, {what} line {line}; to go on from there:\n"
        f"  tail -n +{line} {source} | {command}"
    )
    for flag, word, what_it_is in (("--api-key", "KEY", "API key"), ("--token", "TOKEN", "token")):
        if flag in state.options:
            text += f"\n  ({word}: the {what_it_is} you gave, not printed here)"
    state.output.result_error(text, {"imported": imported, "stopped_at_line": line})


def import_bucket(
    state: State, bucket: str, input_file: str | None, ttl: int | None, max_wait: float
) -> None:
    client = state.client()
    out = state.output
    from_stdin = input_file in (None, "-")
    try:
        stream: IO[bytes] = sys.stdin.buffer if from_stdin else Path(str(input_file)).open("rb")
    except OSError as exc:
        raise click.UsageError(f"cannot read {input_file}: {exc.strerror}") from None
    writer = _Writer(client, bucket, max_wait, out)
    imported = expired = 0
    pending = 1  # the first line not known to be written
    try:
        with progress(out, f"importing into {bucket}", _count_lines(stream)) as advance:
            for number, line in enumerate(stream, 1):
                pending = number
                if line.strip():
                    key, value, record_ttl = parse_record(line, number)
                    if record_ttl == EXPIRED:
                        expired += 1
                    else:
                        writer.write(key, value, record_ttl if record_ttl is not None else ttl)
                        imported += 1
                pending = number + 1
                advance()
    except (ThisDBError, BadRecord) as exc:
        status = out.error(exc)
        _stopped(state, bucket, input_file, imported, pending, "then stopped at")
        click.get_current_context().exit(status)
    except KeyboardInterrupt:
        # Ctrl-C: the line being written may or may not have been; writing it again is harmless.
        out.err.print()
        _stopped(state, bucket, input_file, imported, pending, "interrupted at")
        click.get_current_context().exit(INTERRUPTED)
    finally:
        if not from_stdin:
            stream.close()
    skipped = f" (skipped {expired} that expired since the export)" if expired else ""
    out.result(
        f"imported {imported} keys into {bucket}{skipped}",
        {"imported": imported, "expired": expired},
    )
