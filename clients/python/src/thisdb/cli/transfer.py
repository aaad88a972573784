"""`thisdb export` and `thisdb import`: a bucket as NDJSON, one key a line.

    {"key": "user:1", "value": "alice"}
    {"key": "blob", "value": "AAEC/w==", "encoding": "base64"}
    {"key": "session", "value": "x", "ttl": 3600, "exported_at": 1795400000.25}

Values are text when they are UTF-8, else base64 (the API's own JSON shape). A record may carry
"ttl", the key's remaining seconds (0: never expires), as the server's export reports it, with
"exported_at" (Unix time) saying when: import then gives the key what is left of it, so a copy
expires when the original does (within a second); a key that expired meanwhile is skipped.
Records without "ttl" get --ttl, else the bucket's default ttl.

Both go through the SDK (Client.export, Client.import_items): one streamed request each on a
server with the bulk routes, else page by page and one write a key. Import also reads other
stores' files (--from, formats.py). Stopped (a bad record, the server's refusal, out of
requests, Ctrl-C), it prints the command that goes on after the records known to be imported
(--skip N), with the options it was given.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import click
from rich.progress import (
    BarColumn,
    DownloadColumn,
    FileSizeColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from thisdb import _core
from thisdb.cli import formats
from thisdb.cli.formats import EXPIRED, BadRecord, Record
from thisdb.cli.options import given_options
from thisdb.cli.output import INTERRUPTED, USAGE_ERROR, Output, value_record
from thisdb.cli.state import State
from thisdb.errors import BadRequest, ImportStopped, InvalidArgument

# The per-key path (a server without the bulk routes) takes one write per key per second: a
# 429 for a key written again within it, or a short wait of the hourly limit, is waited out
# (as long as the server asks at most --max-wait seconds) up to this many times a write.
WRITE_RETRIES = 10
PROGRESS_EVERY = 256  # keys between two updates of the progress bar (it redraws 10 times a s)

# Advances the progress bar: keys done, bytes done (both totals so far).
Advance = Callable[[int, int], None]


@contextmanager
def progress(out: Output, description: str, total_bytes: int | None) -> Iterator[Advance]:
    """A progress bar on stderr in keys and bytes when stderr is a terminal (with the bytes
    of the whole file, a bar and the time left); yields the function that moves it."""
    if not out.err.is_terminal:
        yield lambda keys, size: None
        return
    columns: list[ProgressColumn | str] = [
        SpinnerColumn(),
        TextColumn(description),
        TextColumn("{task.fields[keys]:,} keys"),
    ]
    if total_bytes:
        columns += [BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
    else:
        columns += [FileSizeColumn(), TransferSpeedColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=out.err, transient=True) as bar:
        task = bar.add_task(description, total=total_bytes or None, keys=0)
        yield lambda keys, size: bar.update(task, completed=size, keys=keys)


# --- export --------------------------------------------------------------------------------------


def export_bucket(state: State, bucket: str, prefix: str, output_file: Path | None) -> None:
    client = state.client()
    out = state.output
    try:
        stream: IO[bytes] = output_file.open("wb") if output_file else sys.stdout.buffer
    except OSError as exc:
        raise click.UsageError(f"cannot write {output_file}: {exc.strerror}") from None
    count = written = 0
    try:
        with progress(out, f"exporting {bucket}", None) as advance:
            for item in client.export(bucket, prefix or None):
                record: dict[str, Any] = value_record(item.key, item.value or b"")
                if item.ttl is not None:
                    record["ttl"] = item.ttl
                    if item.ttl:
                        record["exported_at"] = round(time.time(), 3)
                line = _core.dumps_json(record) + b"\n"
                stream.write(line)
                count, written = count + 1, written + len(line)
                if count % PROGRESS_EVERY == 0:
                    advance(count, written)
            advance(count, written)
        stream.flush()
    finally:
        if output_file:
            stream.close()
    out.note(f"exported {count} keys from {bucket}")


# --- import --------------------------------------------------------------------------------------


def parse_record(
    record: Record, number: int, unit: str = "line"
) -> tuple[str, bytes, int | None] | None:
    """The key, value and ttl of one record (the ttl None if absent, what is left of it now
    if the record says when it was exported); None if the key has expired since."""
    if not isinstance(record.get("key"), str) or not record["key"]:
        raise BadRecord(number, 'expected {"key": ..., "value": ...}', unit)
    try:
        value = _core.decode_value(record)
    except ValueError as exc:
        raise BadRecord(number, str(exc), unit) from None
    ttl = record.get("ttl")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0):
        raise BadRecord(number, "ttl must be a whole number of seconds >= 0", unit)
    exported_at = record.get("exported_at")
    if ttl and exported_at is not None:
        if isinstance(exported_at, bool) or not isinstance(exported_at, int | float):
            raise BadRecord(number, "exported_at must be a Unix time in seconds", unit)
        left = ttl - (time.time() - exported_at)
        if left < 1:
            return None
        ttl = int(left)  # rounded down: the export rounded up, so the copy stays within a second
    if record.get(EXPIRED):
        return None
    return record["key"], value, ttl


class _Counted:
    """The input file, counting the bytes read from it (for the progress bar)."""

    def __init__(self, stream: IO[bytes]):
        self._stream = stream
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.read_bytes += len(data)
        return data

    def readline(self) -> bytes:
        line = self._stream.readline()
        self.read_bytes += len(line)
        return line

    def __iter__(self) -> Iterator[bytes]:
        for line in self._stream:
            self.read_bytes += len(line)
            yield line


class Feed:
    """The items an import sends: the input's records after --skip, as (key, value, ttl).

    The SDK numbers the items it was given; the resume hint, the input's records: `record_of`
    turns one into the other, from the records left out (blank lines, expired keys: usually
    few, the only memory it keeps). A bad record ends the items (kept in `bad`), so that the
    ones before it are imported."""

    def __init__(
        self, records: Iterator[tuple[int, Record | None]], skip: int, ttl: int | None, unit: str
    ):
        self.records, self.skip, self.ttl, self.unit = records, skip, ttl, unit
        self.left_out: list[int] = []  # record numbers passed over, in order
        self.expired = 0
        self.sent = 0
        self.bad: BadRecord | None = None
        self.on_item: Callable[[int], None] = lambda sent: None

    def __iter__(self) -> Iterator[tuple[str, bytes, int | None]]:
        try:
            for number, record in self.records:
                if record is None:
                    self.left_out.append(number)
                    continue
                parsed = parse_record(record, number, self.unit)
                if parsed is None:
                    self.expired += 1
                    self.left_out.append(number)
                    continue
                key, value, ttl = parsed
                self.sent += 1
                self.on_item(self.sent)
                yield key, value, self.ttl if ttl is None else ttl
        except BadRecord as exc:
            self.bad = exc

    def record_of(self, item: int) -> int:
        """The record number of the item-th item sent (counted from 1; one past the last sent
        gives the record after it)."""
        number = self.skip + item
        while True:
            shifted = self.skip + item + bisect_right(self.left_out, number)
            if shifted == number:
                return number
            number = shifted


def _resume(
    state: State,
    bucket: str,
    input_file: str | None,
    unit: str,
    imported: int,
    at: int,
    why: str,
) -> None:
    """Say how far an import got and the command that goes on from record `at` (those before
    it are imported, or were passed over): the same options as this one (--url, --profile,
    --from, --ttl...) and --skip. A key or token given as an option is not printed: the
    command names it KEY or TOKEN."""
    ctx = click.get_current_context()
    options = given_options(ctx, leave_out=("input_file", "file_option", "skip"))
    from_stdin = input_file in (None, "-")
    source = "-" if from_stdin else str(input_file)
    command = shlex.join(
        ["thisdb", *state.options, "import", bucket, source, *options, "--skip", str(at - 1)]
    )
    if from_stdin:
        command += " < FILE"
    text = f"imported {imported} keys into {bucket}, {why} {unit} {at}; to go on from there:\n"
    text += f"  {command}"
    for flag, word, what_it_is in (("--api-key", "KEY", "API key"), ("--token", "TOKEN", "token")):
        if flag in state.options:
            text += f"\n  ({word}: the {what_it_is} you gave, not printed here)"
    state.output.result_error(text, {"imported": imported, "stopped_at_line": at, "skip": at - 1})


def import_bucket(
    state: State,
    bucket: str,
    input_file: str | None,
    ttl: int | None,
    max_wait: float,
    skip: int,
    source: str,
) -> None:
    out = state.output
    from_stdin = input_file in (None, "-")
    try:
        raw: IO[bytes] = sys.stdin.buffer if from_stdin else Path(str(input_file)).open("rb")
    except OSError as exc:
        raise click.UsageError(f"cannot read {input_file}: {exc.strerror}") from None
    unit = formats.unit(source)
    stream = _Counted(raw)
    feed = Feed(formats.records(stream, source, skip), skip, ttl, unit)  # type: ignore[arg-type]
    client = state.new_client(retries=max(state.retries, WRITE_RETRIES), max_retry_wait=max_wait)
    imported = 0

    def applied(count: int) -> None:
        nonlocal imported
        imported = count

    ctx = click.get_current_context()
    try:
        with progress(out, f"importing into {bucket}", _size(raw)) as advance:

            def moved(sent: int) -> None:
                if sent % PROGRESS_EVERY == 0:
                    advance(sent, stream.read_bytes)

            feed.on_item = moved
            imported = client.import_items(bucket, feed, on_applied=applied)
            advance(feed.sent, stream.read_bytes)
    except ImportStopped as exc:
        status = out.error(exc.error)
        if isinstance(exc.error, BadRequest | InvalidArgument):
            status = USAGE_ERROR  # a bad record, as one the tool finds itself
        at = feed.record_of(exc.line)
        _resume(state, bucket, input_file, unit, exc.applied, at, "then stopped at")
        ctx.exit(status)
    except KeyboardInterrupt:
        # Ctrl-C: what was sent after the records known to be imported may or may not have
        # been; importing it again is harmless.
        out.err.print()
        at = feed.record_of(imported + 1)
        _resume(state, bucket, input_file, unit, imported, at, "interrupted at")
        ctx.exit(INTERRUPTED)
    finally:
        client.close()
        if not from_stdin:
            raw.close()
    if feed.bad is not None:
        status = out.error(click.UsageError(str(feed.bad)))
        _resume(state, bucket, input_file, unit, imported, feed.bad.number, "then stopped at")
        ctx.exit(status)
    skipped = f" (skipped {feed.expired} that expired since the export)" if feed.expired else ""
    out.result(
        f"imported {imported} keys into {bucket}{skipped}",
        {"imported": imported, "expired": feed.expired},
    )


def _size(stream: IO[bytes]) -> int | None:
    """The bytes left to read of a regular file (or of stdin redirected from one), for the
    progress bar's total; None for a pipe."""
    try:
        if not stream.seekable():
            return None
        return max(os.fstat(stream.fileno()).st_size - stream.tell(), 0)
    except (OSError, ValueError):
        return None
