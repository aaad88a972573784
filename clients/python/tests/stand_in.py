"""A stand-in HTTP server with answers given in advance: a proxy in front of the platform, or a
server of another version."""

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Seen:
    """A request as the stand-in received it (header names in lower case)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@contextmanager
def answering(
    answers: list[tuple[int, dict[str, str], bytes]],
    seen: list[tuple[str, str]] | None = None,
    headers_seen: list[str] | None = None,
    requests: list[Seen] | None = None,
) -> Iterator[str]:
    """A stand-in HTTP server giving these answers in turn, whatever the request (a proxy in
    front of the platform, or a server of another version); yields its URL. Each request's
    method and path are added to `seen`, its X-Api-Key or X-Token to `headers_seen`, and the
    whole of it to `requests`."""

    class Answers(http.server.BaseHTTPRequestHandler):
        def answer(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if requests is not None:
                headers = {name.lower(): value for name, value in self.headers.items()}
                requests.append(Seen(self.command, self.path, headers, body))
            if seen is not None:
                seen.append((self.command, self.path))
            if headers_seen is not None:
                headers_seen.append(self.headers.get("X-Api-Key") or self.headers.get("X-Token"))
            status, headers, body = answers.pop(0)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
