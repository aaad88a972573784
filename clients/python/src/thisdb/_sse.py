"""Server-Sent Events: the blocks of a `text/event-stream` body, read from its bytes as they
arrive (the WHATWG HTML standard's rules, "Interpreting an event stream")."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

# A line ends with CR LF, LF or CR.
_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class Message:
    """One block of the stream (its fields; comments left out). `id` and `retry` are None when
    the block has no such line; `data` joins its data lines with newlines."""

    event: str = ""
    data: str | None = None
    id: str | None = None
    retry: int | None = None  # milliseconds


class Reader:
    """Feed it the body's bytes as they come; it gives each block once its blank line has come.

    Blocks made only of comments (`: keep-alive`) give nothing; a block with fields but no data
    (`id: 41`, `retry: 1000`) is given all the same, since its id moves the position.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._started = False
        self._fields: dict[str, str] = {}
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> Iterator[Message]:
        self._buffer += chunk
        while True:
            match = _LINE_END.search(self._buffer)
            if match is None:
                return
            if match.group() == b"\r" and match.end() == len(self._buffer):
                return  # a CR at the end of a chunk: its LF may be in the next one
            line, self._buffer = self._buffer[: match.start()], self._buffer[match.end() :]
            message = self._line(line.decode("utf-8", "replace"))
            if message is not None:
                yield message

    def _line(self, line: str) -> Message | None:
        if not self._started:
            self._started = True
            line = line.removeprefix("\ufeff")  # a byte order mark may open the stream
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._fields["id"] = value
        elif name in ("event", "retry"):
            self._fields[name] = value
        return None  # other fields are ignored, as the standard says

    def _dispatch(self) -> Message | None:
        fields, data = self._fields, self._data
        self._fields, self._data = {}, []
        if not fields and not data:
            return None
        retry = fields.get("retry", "")
        return Message(
            event=fields.get("event", ""),
            data="\n".join(data) if data else None,
            id=fields.get("id"),
            retry=int(retry) if retry.isascii() and retry.isdigit() else None,
        )
