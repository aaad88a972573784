"""A stand-in HTTP server with answers given in advance: a proxy in front of the platform, or a
server of another version; and one for streams of Server-Sent Events, which can drop them."""

import http.server
import socket
import threading
import time
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


# A stream's pieces, besides the bytes it sends: a pause, the connection dropped mid-stream
# (no end of the chunked body: the client sees the connection break), and a clean end. A stream
# whose pieces run out stays open, silent, until the stand-in stops.
DROP = "drop"
END = "end"
Piece = bytes | float | str
Answer = tuple[int, dict[str, str], bytes]


@contextmanager
def streaming(
    connections: list[Answer | list[Piece]], requests: list[Seen] | None = None
) -> Iterator[str]:
    """A stand-in HTTP/1.1 server for streams of Server-Sent Events: each request gets the next
    of `connections`, either an ordinary answer (status, headers, body) or a 200
    text/event-stream whose pieces are sent in turn, each as it comes (chunked); yields its
    URL. Requests past the last connection get a 400, so a client that asks once too often
    fails. Each request is added to `requests`."""
    stop = threading.Event()

    class Streams(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if requests is not None:
                headers = {name.lower(): value for name, value in self.headers.items()}
                requests.append(Seen(self.command, self.path, headers, b""))
            if not connections:
                self.answer((400, {"Content-Type": "application/json"}, b'{"error": "no more"}'))
                return
            connection = connections.pop(0)
            if isinstance(connection, tuple):
                self.answer(connection)
            else:
                self.stream(connection)

        def answer(self, answer: Answer):
            status, headers, body = answer
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def stream(self, pieces: list[Piece]):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            try:
                for piece in pieces:
                    if piece == DROP:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if piece == END:
                        self.wfile.write(b"0\r\n\r\n")
                        self.close_connection = True
                        return
                    if isinstance(piece, float | int):
                        time.sleep(piece)
                        continue
                    assert isinstance(piece, bytes)
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                stop.wait(30)  # open and silent until the test ends
                self.close_connection = True
            except OSError:
                self.close_connection = True  # the client hung up

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Streams)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
