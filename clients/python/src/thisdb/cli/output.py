"""What the tool prints: results on stdout (for people, or JSON with --json), notes, progress
and errors on stderr. Colours only on a terminal (rich decides; NO_COLOR is honoured)."""

from __future__ import annotations

import json
import sys
from typing import IO, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from thisdb import _core
from thisdb.errors import (
    ApiError,
    ConfigurationError,
    Conflict,
    InvalidArgument,
    NetworkError,
    NotTheAPI,
    PreconditionFailed,
    ThisDBError,
    reason_phrase,
)

# Exit statuses a script can rely on.
OK, API_ERROR, USAGE_ERROR, NETWORK_ERROR = 0, 1, 2, 3
NOT_THE_API = 4  # the URL does not lead to a ThisDB API: an HTML page, a redirect
# A condition did not hold, so nothing changed: a script reads again and retries.
PRECONDITION_FAILED = 5  # 412: --if-version, --if-absent, --if-exists
CONFLICT = 6  # 409: a check of a transaction
INTERRUPTED = 130


class Output:
    def __init__(self, json_mode: bool = False):
        self.json = json_mode
        # file=None: rich writes to whatever sys.stdout / sys.stderr is at the time.
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    @property
    def stdout_is_terminal(self) -> bool:
        return self.out.is_terminal

    def line(self, text: str) -> None:
        """A line of plain text on stdout, as it is (no markup, tabs kept)."""
        sys.stdout.write(text + "\n")

    def data(self, obj: Any) -> None:
        """One JSON document on stdout, on one line."""
        sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")

    def result(self, text: str, obj: Any) -> None:
        """A result: `text` for people, `obj` as JSON with --json."""
        if self.json:
            self.data(obj)
        else:
            self.line(text)

    def result_error(self, text: str, obj: Any) -> None:
        """What a failed command got done: `text` on stderr for people, `obj` on stdout as JSON."""
        if self.json:
            self.data(obj)
        else:
            self.err.print(escape(text))

    def raw(self, content: bytes) -> None:
        sys.stdout.flush()
        stream: IO[bytes] = sys.stdout.buffer
        stream.write(content)
        stream.flush()

    def note(self, text: str) -> None:
        """A remark for people on stderr (not printed with --json)."""
        if not self.json:
            self.err.print(f"[dim]{escape(text)}[/dim]")

    def warning(self, text: str) -> None:
        if self.json:
            sys.stderr.write(json.dumps({"warning": text}, ensure_ascii=False) + "\n")
        else:
            self.err.print(f"[yellow]warning:[/yellow] {escape(text)}")

    def table(self, columns: list[str], rows: list[list[str]], right: tuple[int, ...] = ()) -> None:
        """A table on stdout; the columns numbered in `right` (from 0) are aligned right."""
        table = Table(box=None, header_style="bold", pad_edge=False)
        for index, name in enumerate(columns):
            table.add_column(name, justify="right" if index in right else "left")
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))
        self.out.print(table)

    def error(self, exc: BaseException | str) -> int:
        """Print an error on stderr and return the exit status it stands for."""
        status, message, code = _describe(exc)
        if self.json:
            record: dict[str, Any] = {"error": message}
            if status is not None:
                record["status"] = status
            if isinstance(exc, PreconditionFailed):
                record["version"] = exc.version
            if isinstance(exc, Conflict):
                record["failed"], record["versions"] = exc.failed, exc.versions
            sys.stderr.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            prefix = f"{status} {reason_phrase(status)}: " if status is not None else ""
            self.err.print(f"[bold red]error:[/bold red] {escape(prefix + message)}")
            hint = _hint(exc)
            if hint:
                self.err.print(f"[dim]{escape(hint)}[/dim]")
        return code


def _describe(exc: BaseException | str) -> tuple[int | None, str, int]:
    if isinstance(exc, str):
        return None, exc, API_ERROR
    if isinstance(exc, PreconditionFailed):
        return exc.status, exc.message, PRECONDITION_FAILED
    if isinstance(exc, Conflict):
        return exc.status, exc.message, CONFLICT
    if isinstance(exc, ApiError):
        return exc.status, exc.message, API_ERROR
    if isinstance(exc, NetworkError):
        return None, str(exc), NETWORK_ERROR
    if isinstance(exc, NotTheAPI):
        return None, str(exc), NOT_THE_API
    if isinstance(exc, click.UsageError):
        return None, exc.format_message(), USAGE_ERROR
    if isinstance(exc, ConfigurationError | InvalidArgument):
        return None, str(exc), USAGE_ERROR
    if isinstance(exc, ThisDBError):
        return None, str(exc), API_ERROR
    return None, str(exc), API_ERROR


def _hint(exc: BaseException | str) -> str | None:
    if isinstance(exc, PreconditionFailed):
        if exc.version is None:
            return "the key does not exist"
        return f"the key is at version {exc.version}"
    if isinstance(exc, Conflict) and exc.versions:
        now = ", ".join(
            f"{key}: {'absent' if v is None else 'version ' + v}" for key, v in exc.versions.items()
        )
        return f"now {now}"
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float):
        return f"the server asks to wait {retry_after:g} s before trying again"
    return None


def value_record(key: str, value: bytes) -> dict[str, Any]:
    """A key and value the way the API writes them in JSON (base64 when not UTF-8)."""
    return {"key": key, **_core.encode_value(value)}


# Tab-separated output (`keys` and `keys --values` off a terminal): one line a key, its columns
# escaped so a key or value holding a tab, a newline or bytes that are not UTF-8 cannot be
# misread, and no control character reaches the terminal or the next tool.
_TSV_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def tsv_field(value: str | bytes) -> str:
    r"""A key or value as one TSV field: backslash, tab, newline and carriage return as `\\`,
    `\t`, `\n`, `\r`; any other control byte (below 0x20, 0x7f) and each byte that is not part
    of UTF-8 text as `\xHH`; the rest as it is (UTF-8). `\xHH` always stands for the byte HH, so
    reading the escapes back, left to right, gives the exact bytes."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")  # a stray byte b -> U+DC00 + b
    out = []
    for char in value:
        escaped = _TSV_ESCAPES.get(char)
        if escaped is None:
            if char < " " or char == "\x7f":
                escaped = f"\\x{ord(char):02x}"
            elif "\udc80" <= char <= "\udcff":
                escaped = f"\\x{ord(char) - 0xDC00:02x}"
        out.append(escaped or char)
    return "".join(out)


def shown_value(value: bytes, width: int = 200) -> str:
    """A value for people: its text (control characters escaped), or a note if binary."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return f"<binary, {len(value)} bytes>"
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return shown if len(shown) <= width else shown[: width - 1] + "…"
