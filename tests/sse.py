"""A client of watch streams (GET /v1/<bucket>?watch=true) for the tests: one HTTP/1.1 connection
read as Server-Sent Events, block by block, with the raw bytes kept."""

import http.client
import json
from dataclasses import dataclass, field


@dataclass
class Block:
    """One SSE block: its comments and fields (data parsed as JSON)."""

    comments: list[str] = field(default_factory=list)
    id: str | None = None
    event: str | None = None
    data: dict | None = None
    retry: str | None = None

    @property
    def position(self) -> int | None:
        return None if self.id is None else int(self.id)


def parse_block(text: str) -> Block:
    block = Block()
    for line in text.split("\n"):
        if line.startswith(":"):
            block.comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            block.data = json.loads(value)
        elif name in ("id", "event", "retry"):
            setattr(block, name, value)
        else:
            raise AssertionError(f"an unknown SSE field: {line!r}")
    return block


class Stream:
    """A watch request on its own connection; `status`, `headers`, then blocks as they come."""

    def __init__(
        self,
        port: int,
        bucket: str,
        query: str = "",
        *,
        key: str | None = None,
        token: str | None = None,
        last_event_id: int | str | None = None,
        timeout: float = 15,
        conn: http.client.HTTPConnection | None = None,
    ):
        """On a new connection, or on `conn` (open, its last answer read)."""
        headers = {"X-Api-Key": key} if key else {"X-Token": token or ""}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", f"/v1/{bucket}?watch=true{query}", headers=headers)
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = {name.lower(): value for name, value in self.response.getheaders()}
        self.buffer = b""
        self.ended = False
        if self.status != 200:
            self.body = self.response.read()
            self.close()

    def next_block(self) -> Block | None:
        """The next block (comments included); None when the stream ended. A socket timeout
        (TimeoutError) if nothing comes within the connection's timeout."""
        while b"\n\n" not in self.buffer:
            if self.ended:
                return None
            chunk = self.response.read1(65536)
            if not chunk:
                self.ended = True
                if self.buffer.strip():
                    raise AssertionError(f"the stream ended inside a block: {self.buffer!r}")
                return None
            self.buffer += chunk
        text, self.buffer = self.buffer.split(b"\n\n", 1)
        return parse_block(text.decode())

    def next_event(self, quiet: int = 30) -> Block | None:
        """The next block with an event (comments and the opening id skipped); an
        AssertionError after `quiet` blocks without one (keep-alives of an idle stream)."""
        for _ in range(quiet):
            block = self.next_block()
            if block is None or block.event is not None:
                return block
        raise AssertionError(f"no event came within {quiet} blocks")

    def events(self, count: int) -> list[Block]:
        found = []
        while len(found) < count:
            block = self.next_event()
            assert block is not None, f"the stream ended after {found}"
            found.append(block)
        return found

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def change(block: Block) -> tuple:
    """(id, type, key, version) of an event, as the history holds it."""
    assert block.data is not None
    return (block.position, block.event, block.data["key"], int(block.data["version"]))
