"""Watch streams for the benchmark, held open by child processes that read them on raw epoll.

5,000 streams at 20 writes a second are 100,000 events a second to read, on the 2 cores the
server also runs on: read as they came (a wake-up, a recv and a regex search an event), they
took the readers 12 us an event here, nearly half the machine, so the figures were partly the
readers'. Now a share of the streams, drawn at random as they open, is timed: read as their
events come, each event's time being the kernel's, when it reached the socket (SO_TIMESTAMPNS:
how late the reader reads is not in it). The others are drained every DRAIN_SECONDS and their
events counted, so every stream's events are still checked to have arrived. The readers run at
READER_NICE. Seen from the server nothing differs: every stream is sent every event, and one
drained late never fills its window. Times are CLOCK_REALTIME, one clock for every process of
the machine: an event's arrival in a reader compares with the write's 200 in the parent.
"""

import multiprocessing
import os
import random
import re
import select
import socket
import struct
import time
from array import array
from multiprocessing.connection import Connection

READERS = 2  # processes reading streams (one a core)
OPEN_AT_ONCE = 100  # streams a reader has asked for and not yet seen answered
OPEN_TIMEOUT = 60  # seconds for a reader's share of streams to open
EVENT_KEY = re.compile(rb'"key": "w/(\d+)"')  # a benchmark event's sequence number
EVENT_MARK = b'"key": "w/'  # a benchmark event, where only counted
RECV_BYTES = 256 * 1024
DRAIN_SECONDS = 1.0  # how often the untimed streams are read
# The readers stand for clients on other machines: the server and its database go first for the
# cores (with the kernel's arrival times, how late a reader reads is not in the figures).
READER_NICE = 10
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux's; not named by Python 3.11
TIMESTAMP = struct.Struct("qq")  # struct timespec
ANCILLARY = socket.CMSG_SPACE(TIMESTAMP.size)


class _Stream:
    __slots__ = ("sock", "opened", "rest", "timed")

    def __init__(self, sock: socket.socket, timed: bool):
        self.sock = sock
        self.opened = False
        self.rest = b""
        self.timed = timed


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
        self.counted = 0  # the untimed streams' events since "expect"
        # The untimed streams, once opened: watched by an epoll of their own that nobody waits
        # on, asked once a drain which have something (an idle stream then costs no recv).
        self.drained: set[int] = set()
        self.drain_poll = select.epoll()
        self.timed_share = 1.0
        self.request = b""
        self.to_open = 0
        self.asking = 0  # opened, answer not yet seen
        self.opening_since = 0.0
        self.failed: str | None = None

    def run(self) -> None:
        next_drain = time.monotonic() + DRAIN_SECONDS
        while True:
            self._open_some()
            if time.monotonic() >= next_drain:
                self._drain()
                next_drain = time.monotonic() + DRAIN_SECONDS
            for fd, _ in self.poll.poll(max(0.0, next_drain - time.monotonic())):
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
            _, count, path, self.timed_share = command
            self.request = (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                f"{self.auth}\r\n"
            ).encode()
            self.to_open, self.opening_since = count, time.monotonic()
        elif kind == "expect":
            _, first, count = command
            self.arrivals = {seq: array("d") for seq in range(first, first + count)}
            self.counted = 0
            self.pipe.send(len(self.streams))
        elif kind == "arrived":
            timed = sum(len(times) for times in self.arrivals.values())
            self.pipe.send(timed + self.counted)
        elif kind == "arrivals":
            arrivals = {seq: times.tobytes() for seq, times in self.arrivals.items()}
            self.pipe.send((arrivals, self.counted))
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
            timed = random.random() < self.timed_share
            if timed:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.sendall(self.request)
            sock.setblocking(False)
            self.streams[sock.fileno()] = _Stream(sock, timed)
            self.order.append(sock.fileno())
            self.poll.register(sock.fileno(), select.EPOLLIN)
            self.to_open -= 1
            self.asking += 1

    def _read(self, fd: int) -> None:
        stream = self.streams.get(fd)
        if stream is None:
            return
        now = 0.0
        try:
            if stream.timed:
                data, ancillary, _, _ = stream.sock.recvmsg(RECV_BYTES, ANCILLARY)
                for level, kind, raw in ancillary:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        seconds, nanoseconds = TIMESTAMP.unpack(raw)
                        now = seconds + nanoseconds / 1e9  # its last segment's arrival
            else:
                data = stream.sock.recv(RECV_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        now = now or time.time()
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
            if not stream.timed:  # read from now on by _drain(), not at each event
                self.poll.unregister(fd)
                self.drained.add(fd)
                self.drain_poll.register(fd, select.EPOLLIN)
        end = data.rfind(b"\n\n")  # events end with a blank line; keep a split one
        if end < 0:
            stream.rest = data
            return
        stream.rest = data[end + 2 :]
        if stream.timed:
            arrivals = self.arrivals
            for match in EVENT_KEY.finditer(data, 0, end):
                times = arrivals.get(int(match.group(1)))
                if times is not None:
                    times.append(now)
        else:
            self._count(data, end)

    def _drain(self) -> None:
        """Read what the untimed streams were sent since the last drain."""
        for fd, _ in self.drain_poll.poll(0, max(1, len(self.drained))):
            stream = self.streams.get(fd)
            while stream is not None and fd in self.streams:
                try:
                    data = stream.sock.recv(RECV_BYTES)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    self._drop(fd)
                    break
                self._take(stream, data)
                if len(data) < RECV_BYTES:
                    break

    def _take(self, stream: _Stream, data: bytes) -> None:
        """An opened untimed stream's bytes: its events counted."""
        data = stream.rest + data
        end = data.rfind(b"\n\n")
        if end < 0:
            stream.rest = data
            return
        stream.rest = data[end + 2 :]
        self._count(data, end)

    def _count(self, data: bytes, end: int) -> None:
        self.counted += data.count(EVENT_MARK, 0, end)

    def _drop(self, fd: int) -> None:
        stream = self.streams.pop(fd, None)
        if stream is None:
            return
        if fd in self.drained:
            self.drained.discard(fd)
            self.drain_poll.unregister(fd)
        else:
            self.poll.unregister(fd)
        self.order.remove(fd)
        stream.sock.close()


def _reader_main(pipe: Connection, port: int, auth: dict[str, str]) -> None:
    os.nice(READER_NICE)
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

    def open(self, count: int, path: str, timed: float = 1.0) -> float:
        """Opens `count` more streams on `path` (split over the readers), each timed with the
        chance `timed`; the seconds it took."""
        started = time.monotonic()
        shares = [count // READERS + (i < count % READERS) for i in range(READERS)]
        for pipe, share in zip(self.pipes, shares, strict=True):
            pipe.send(("open", share, path, timed))
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
        connection: the latencies (seconds) of every event that arrived at a timed stream, of the
        writes' own answers, and how many events arrived at all the streams."""
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
                sent = time.time()
                writer.sendall(head.encode() + b"\r\n" + body)
                status = answers.readline()
                answered[seq] = time.time()
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
        delivered = 0
        for pipe in self.pipes:
            pipe.send(("arrivals",))
            arrivals, counted = pipe.recv()
            for seq, raw in arrivals.items():
                times = array("d")
                times.frombytes(raw)
                latencies.extend(t - answered[seq] for t in times)
            delivered += counted
        return latencies, took, delivered + len(latencies)
