"""The blocks of a stream of Server-Sent Events as the API writes them, for a stand-in server to
send (stand_in.streaming), and the query of a request it received."""

import json
from urllib.parse import parse_qs, urlsplit

from stand_in import Seen


def block(position=None, event=None, data=None, retry=None) -> bytes:
    """One block of the stream, as the server writes it."""
    lines = []
    if position is not None:
        lines.append(f"id: {position}")
    if event is not None:
        lines.append(f"event: {event}")
    if data is not None:
        lines.append(f"data: {json.dumps(data)}")
    if retry is not None:
        lines.append(f"retry: {retry}")
    return ("\n".join(lines) + "\n\n").encode()


def opening(position) -> bytes:
    return b": watching\n" + block(position, retry=10)


def put(position, key, value="v", version="1", ttl=0) -> bytes:
    data = {"key": key, "value": value, "version": version, "ttl": ttl}
    return block(position, "put", data)


def delete(position, key, version="2", reason="deleted") -> bytes:
    return block(position, "delete", {"key": key, "version": version, "reason": reason})


def query(seen: Seen) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(seen.path).query).items()}
