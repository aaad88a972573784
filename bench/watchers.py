"""Watch streams for the benchmark, held open by child processes that read them on raw epoll.

A stream costs its reader one recv and one regex search an event, with no event loop in
between: 5,000 streams at 20 writes a second are 100,000 events a second to read, on the 2
cores the server also runs on, and a slower reader would measure itself rather than the server.
The streams are split over READERS processes. Arrival times are CLOCK_MONOTONIC (time.monotonic),
one clock for every process of the machine: an event's arrival in a reader compares with the
write's 200 in the parent.
"""

import multiprocessing
import re
import select
import socket
import time
from array import array
from multiprocessing.connection import Connection

READERS = 2  # processes reading streams (one a core)
OPEN_AT_ONCE = 100  # streams a reader has asked for and not yet seen answered
OPEN_TIMEOUT = 60  # seconds for a reader's share of streams to open
EVENT_KEY = re.compile(rb'"key": "w/(\d+)"')  # a benchmark event's sequence number
RECV_BYTES = 256 * 1024


class _Stream:
    __slots__ = ("sock", "opened", "rest")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.opened = False
        self.rest = b""


class _Reader:
    """The loop of one reader process: commands from the parent on `pipe`, events from its
    streams."""

    def __init__(self, pipe: Connection, port: int, auth: dict[str, str]):
        self.pipe, self.port = pipe, port
        self.auth = "".join(f"{name}: {value}\r\n" for name, value in auth.items())
        self.poll = select.epoll()
        self.poll.register(pipe.fileno(), select.EPOLLIN)
        self.streams: dict[int, _Stream] = {}
        self.order: list[int] = []  # descriptors, oldest first
        self.arrivals: dict[int, array] = {}
        self.request = b""
        self.to_open = 0
        self.asking = 0  # opened, answer not yet seen
        self.opening_since = 0.0
        self.failed: str | None = None

    def run(self) -> None:
        while True:
            self._open_some()
            for fd, _ in self.poll.poll(0.5):
                if fd == self.pipe.fileno():
                    if not self._command(self.pipe.recv()):
                        return
                else:
                    self._read(fd)
            if self.opening_since and (self.to_open == self.asking == 0 or self.failed):
                self.pipe.send(("opened", time.monotonic() - self.opening_since, self.failed))
                self.opening_since, self.failed = 0.0, None
            elif self.opening_since and time.monotonic() - self.opening_since > OPEN_TIMEOUT:
                self.failed = (
                    f"{self.to_open + self.asking} streams not opened after {OPEN_TIMEOUT} s "
                    "(granian's --backpressure, the Makefile's WEB_MAX_CONNECTIONS?)"
                )

    def _command(self, command: tuple) -> bool:
        kind = command[0]
        if kind == "open":
            _, count, path = command
            self.request = (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                f"{self.auth}\r\n"
            ).encode()
            self.to_open, self.opening_since = count, time.monotonic()
        elif kind == "expect":
            _, first, count = command
            self.arrivals = {seq: array("d") for seq in range(first, first + count)}
            self.pipe.send(len(self.streams))
        elif kind == "arrived":
            self.pipe.send(sum(len(times) for times in self.arrivals.values()))
        elif kind == "arrivals":
            self.pipe.send({seq: times.tobytes() for seq, times in self.arrivals.items()})
        elif kind == "close":
            count = len(self.order) if command[1] is None else command[1]
            for fd in self.order[len(self.order) - count :]:
                self._drop(fd)
            self.pipe.send(len(self.streams))
        elif kind == "stop":
            for fd in list(self.order):
                self._drop(fd)
            return False
        return True

    def _open_some(self) -> None:
        while self.to_open and self.asking < OPEN_AT_ONCE:
            sock = socket.create_connection(("127.0.0.1", self.port))
            sock.sendall(self.request)
            sock.setblocking(False)
            self.streams[sock.fileno()] = _Stream(sock)
            self.order.append(sock.fileno())
            self.poll.register(sock.fileno(), select.EPOLLIN)
            self.to_open -= 1
            self.asking += 1

    def _read(self, fd: int) -> None:
        stream = self.streams.get(fd)
        if stream is None:
            return
        try:
            data = stream.sock.recv(RECV_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        now = time.monotonic()
        if not data:
            if not stream.opened:
                self.asking -= 1
                self.failed = "a stream was closed before its answer"
            self._drop(fd)
            return
        data = stream.rest + data
        if not stream.opened:
            if b"\r\n\r\n" not in data:
                stream.rest = data
                return
            if not data.startswith(b"HTTP/1.1 200"):
                self.failed = data[:300].decode("latin-1")
            stream.opened = True
            self.asking -= 1
        end = data.rfind(b"\n\n")  # events end with a blank line; keep a split one
        if end < 0:
            stream.rest = data
            return
        stream.rest = data[end + 2 :]
        arrivals = self.arrivals
        for match in EVENT_KEY.finditer(data, 0, end):
            times = arrivals.get(int(match.group(1)))
            if times is not None:
                times.append(now)

    def _drop(self, fd: int) -> None:
        stream = self.streams.pop(fd, None)
        if stream is None:
            return
        self.poll.unregister(fd)
        self.order.remove(fd)
        stream.sock.close()


def _reader_main(pipe: Connection, port: int, auth: dict[str, str]) -> None:
    _Reader(pipe, port, auth).run()


class Readers:
    """READERS processes holding watch streams; the parent writes and collects."""

    def __init__(self, port: int, auth: dict[str, str]):
        self.port, self.auth = port, auth
        self.open_streams = 0
        context = multiprocessing.get_context("spawn")  # no threads of the parent copied
        self.pipes: list[Connection] = []
        self.processes = []
        for _ in range(READERS):
            parent, child = context.Pipe()
            process = context.Process(target=_reader_main, args=(child, port, auth), daemon=True)
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)

    def open(self, count: int, path: str) -> float:
        """Opens `count` more streams on `path` (split over the readers); the seconds it took."""
        started = time.monotonic()
        shares = [count // READERS + (i < count % READERS) for i in range(READERS)]
        for pipe, share in zip(self.pipes, shares, strict=True):
            pipe.send(("open", share, path))
        for pipe in self.pipes:
            _, _, failed = pipe.recv()
            if failed:
                raise RuntimeError(failed)
        self.open_streams += count
        return time.monotonic() - started

    def close(self, count: int | None = None) -> None:
        """Closes `count` streams (all by default), then gives the workers a second to hear it."""
        count = self.open_streams if count is None else count
        shares = [count // READERS + (i < count % READERS) for i in range(READERS)]
        for pipe, share in zip(self.pipes, shares, strict=True):
            pipe.send(("close", share))
        self.open_streams = sum(pipe.recv() for pipe in self.pipes)
        time.sleep(1)

    def stop(self) -> None:
        for pipe in self.pipes:
            pipe.send(("stop",))
        for process in self.processes:
            process.join(10)

    def measure(self, bucket: str, prefix: str, first: int, writes: int, rate: float):
        """`writes` sets of new keys <prefix><first>... at `rate` a second, over one keep-alive
        connection: the latencies (seconds) of every event that arrived at a stream, and of the
        writes' own answers."""
        for pipe in self.pipes:
            pipe.send(("expect", first, writes))
        streams = sum(pipe.recv() for pipe in self.pipes)
        answered: dict[int, float] = {}
        took: list[float] = []
        auth = "".join(f"{name}: {value}\r\n" for name, value in self.auth.items())
        with socket.create_connection(("127.0.0.1", self.port)) as writer:
            answers = writer.makefile("rb")
            start = time.monotonic()
            for n in range(writes):
                time.sleep(max(0.0, start + n / rate - time.monotonic()))
                seq = first + n
                body = f"value-{seq}".encode()
                head = f"POST /v1/{bucket}/{prefix}{seq} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
                head += f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n"
                sent = time.monotonic()
                writer.sendall(head.encode() + b"\r\n" + body)
                status = answers.readline()
                answered[seq] = time.monotonic()
                took.append(answered[seq] - sent)
                if not status.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"a write was answered {status!r}")
                length = 0
                while (line := answers.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                answers.read(length)
        deadline = time.monotonic() + 10  # the last events' arrivals
        while time.monotonic() < deadline:
            for pipe in self.pipes:
                pipe.send(("arrived",))
            if sum(pipe.recv() for pipe in self.pipes) >= streams * writes:
                break
            time.sleep(0.1)
        latencies: list[float] = []
        for pipe in self.pipes:
            pipe.send(("arrivals",))
            for seq, raw in pipe.recv().items():
                times = array("d")
                times.frombytes(raw)
                latencies.extend(t - answered[seq] for t in times)
        return latencies, took
