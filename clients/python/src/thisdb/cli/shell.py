"""`thisdb shell` (interactive: history, tab completion) and `thisdb -c` (commands from stdin).

A line is a command of the tool without the word `thisdb`: `get BUCKET KEY`, `keys BUCKET`, ...
After `use BUCKET`, commands that take a bucket take it from there: `get KEY`, `set KEY VALUE`,
`keys --prefix user:`, `token create --permissions read`.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO

import click
from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory

from thisdb.cli.config import history_path
from thisdb.cli.output import OK
from thisdb.cli.state import State
from thisdb.errors import ThisDBError

# Runs one command line of the tool and returns its exit status, errors printed (main.invoke).
Invoke = Callable[[State, list[str]], int]

BUILTINS = ("use", "help", "exit", "quit")
# Commands whose first argument is a bucket, and of those, the ones whose second is a key.
BUCKET_FIRST = ("get", "set", "incr", "del", "keys", "export", "import", "txn", "watch")
KEY_SECOND = ("get", "set", "incr", "del")
NOT_IN_SHELL = ("shell", "login")
SHELL_COMMANDS = [
    ("use BUCKET", "Make BUCKET current: then leave it out (get KEY, set KEY VALUE, keys)."),
    ("use", "Show the current bucket."),
    ("help [COMMAND]", "This list, or a command's options."),
    ("exit", "Leave the shell (or Ctrl-D)."),
]
SHELL_HELP_END = "Tab completes commands, options, buckets and the current bucket's keys."


def shell_help(tool: click.Group) -> str:
    """The commands a line can hold: the tool's, but those the shell cannot run, and its own."""
    ctx = click.Context(tool, info_name="thisdb")
    formatter = ctx.make_formatter()
    commands = [
        (name, command.get_short_help_str(limit=90))
        for name, command in sorted(tool.commands.items())
        if name not in NOT_IN_SHELL and not command.hidden
    ]
    with formatter.section("Commands"):
        formatter.write_dl(commands)
    with formatter.section("In the shell"):
        formatter.write_dl(SHELL_COMMANDS)
    formatter.write_paragraph()
    formatter.write_text(SHELL_HELP_END)
    return formatter.getvalue().rstrip("\n")


class ShellExit(Exception):
    pass


def with_bucket(state: State, words: list[str]) -> list[str]:
    """Put the current bucket where the command expects its BUCKET argument."""
    if state.bucket is None:
        return words
    if words[0] in BUCKET_FIRST:
        return [words[0], state.bucket, *words[1:]]
    if words[:2] == ["token", "create"]:
        return [*words[:2], state.bucket, *words[2:]]
    return words


def _use(state: State, args: list[str]) -> int:
    if not args:
        state.output.result(state.bucket or "no current bucket", {"bucket": state.bucket})
        return OK
    if len(args) > 1 or not args[0]:
        what = "an empty bucket" if len(args) == 1 else "more than one bucket"
        return state.output.error(click.UsageError(f"use BUCKET: {what} cannot be current"))
    try:
        state.client().list_keys(args[0], limit=1)  # say now if it does not exist
    except (ThisDBError, click.UsageError) as exc:
        return state.output.error(exc)
    state.bucket = args[0]
    return OK


class Shell:
    """The lines of `thisdb shell` and `thisdb -c`, each run as a command line of `tool`.

    `invoke` runs a command line (main.invoke): it is given, not imported, so that main, which
    starts the shell, is the only one of the two that knows the other."""

    def __init__(self, state: State, tool: click.Group, invoke: Invoke):
        self.state = state
        self.tool = tool
        self.invoke = invoke

    def run_line(self, line: str) -> int:
        """Run one line; return its exit status (errors are printed). ShellExit on `exit`."""
        state = self.state
        text = line.strip()
        if not text or text.startswith("#"):
            return OK
        try:
            words = shlex.split(text)
        except ValueError as exc:
            return state.output.error(click.UsageError(f"cannot read the line: {exc}"))
        head = words[0]
        if head in ("exit", "quit"):
            raise ShellExit
        if head == "use":
            return _use(state, words[1:])
        if head == "help":
            if len(words) == 1:
                state.output.line(shell_help(self.tool))
                return OK
            head = words[1]
            words = [*words[1:], "--help"]
        if head in NOT_IN_SHELL:
            return state.output.error(click.UsageError(f"`{head}` is not available in the shell"))
        return self.invoke(state, with_bucket(state, words))

    def run_lines(self, stream: IO[str]) -> int:
        """`thisdb -c`: run each line; stop at the first that fails and return its status."""
        self.state.interactive = True
        for number, line in enumerate(stream, 1):
            try:
                status = self.run_line(line)
            except ShellExit:
                return OK
            if status != OK:
                self.state.output.note(f"stopped at line {number}")
                return status
        return OK

    def run(self) -> int:
        """The interactive shell; on a stdin that is not a terminal, the same as `thisdb -c`."""
        state = self.state
        if not sys.stdin.isatty():
            return self.run_lines(sys.stdin)
        state.interactive = True
        path = history_path()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)  # values typed in the shell are kept in it
        session: PromptSession[str] = PromptSession(
            history=FileHistory(str(path)),
            completer=ShellCompleter(state, self.tool),
            complete_while_typing=False,
            auto_suggest=AutoSuggestFromHistory(),
        )
        state.output.note(
            f"ThisDB shell on {state.url or '(no server)'}, profile {state.profile!r}. "
            "Type help, or exit."
        )
        while True:
            try:
                line = session.prompt(f"thisdb{':' + state.bucket if state.bucket else ''}> ")
            except KeyboardInterrupt:
                continue
            except EOFError:
                return OK
            try:
                self.run_line(line)
            except ShellExit:
                return OK


class ShellCompleter(Completer):
    """Commands, subcommands, options, remembered buckets and the current bucket's keys."""

    def __init__(self, state: State, tool: click.Group):
        self.state = state
        self.tool = tool
        # (bucket, prefix, keys, complete, when): one listing serves the keystrokes after it.
        self._cache: tuple[str, str, list[str], bool, float] | None = None

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        before = document.text_before_cursor
        word = document.get_word_before_cursor(WORD=True)
        words = before.split()
        index = len(words) if not before or before[-1].isspace() else len(words) - 1
        prefix = word.lstrip("'\"")
        head = words[0] if words else ""
        candidates: Iterable[str] = ()
        if index == 0:
            candidates = sorted(
                [*(c for c in self.tool.commands if c not in NOT_IN_SHELL), *BUILTINS]
            )
        elif prefix.startswith("-"):
            candidates = _options(self.tool, words)
        elif head in ("bucket", "token") and index == 1:
            group = self.tool.commands[head]
            candidates = sorted(group.commands) if isinstance(group, click.Group) else ()
        elif head == "use" and index == 1:
            candidates = self._buckets()
        elif head in BUCKET_FIRST and index == 1 and self.state.bucket is None:
            candidates = self._buckets()
        elif head in KEY_SECOND and index == 1 and self.state.bucket is not None:
            candidates = self._keys(self.state.bucket, prefix)
        elif head in KEY_SECOND and index == 2 and self.state.bucket is None:
            candidates = self._keys(words[1], prefix)
        elif words[:2] in (["bucket", "update"], ["bucket", "delete"]) and index == 2:
            candidates = self._buckets()
        for candidate in candidates:
            if candidate.startswith(prefix):
                yield Completion(_quote(candidate), start_position=-len(word), display=candidate)

    def _buckets(self) -> list[str]:
        try:
            return self.state.config_file.buckets(self.state.profile)
        except click.UsageError:
            return []

    def _keys(self, bucket: str, prefix: str) -> list[str]:
        cached = self._cache
        now = time.monotonic()
        if cached and cached[0] == bucket and now - cached[4] < 5:
            _, cached_prefix, keys, complete, _ = cached
            if prefix.startswith(cached_prefix) and complete:
                return [k for k in keys if k.startswith(prefix)]
        try:
            page = self.state.client().list_keys(bucket, prefix=prefix or None, limit=200)
        except (ThisDBError, click.UsageError):
            return []
        self._cache = (bucket, prefix, page.keys, page.next_cursor is None, now)
        return page.keys


def _quote(text: str) -> str:
    return shlex.quote(text) if text else text


def _options(cli: click.Group, words: list[str]) -> Iterator[str]:
    command: click.Command | None = cli
    for word in words:
        if isinstance(command, click.Group) and word in command.commands:
            command = command.commands[word]
    if command is None:
        return
    for param in command.params:
        if isinstance(param, click.Option):
            yield from (opt for opt in param.opts if opt.startswith("--"))
    yield "--help"
