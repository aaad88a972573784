"""Counting what reaches PostgreSQL and Redis, on the wire: TCP proxies that a server under test
connects through, counting the statements (PostgreSQL's Query and Sync messages, or the ones it
must parse) and the commands (Redis's request arrays) its connections send. Everything a whole
request costs is seen, health checks, transaction statements and signal handlers included."""

import socket
import struct
import threading


class Proxy:
    """Forwards 127.0.0.1:<port> to `target`; counts the client's messages with `counter`."""

    def __init__(self, target: tuple[str, int], parser_factory):
        self.target = target
        self.parser_factory = parser_factory
        self.count = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed = False
        self.connections: list[tuple[socket.socket, object]] = []  # (upstream, its parser)
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> int:
        with self.lock:
            count, self.count = self.count, 0
        return count

    def _add(self, n: int) -> None:
        if n:
            with self.lock:
                self.count += n

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            parser = self.parser_factory()
            self.connections.append((upstream, parser))
            threading.Thread(
                target=self._pipe, args=(client, upstream, parser), daemon=True
            ).start()
            threading.Thread(target=self._pipe, args=(upstream, client, None), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, parser) -> None:
        try:
            while data := source.recv(65536):
                if parser is not None:
                    self._add(parser.feed(data))
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.closed = True
        self.listener.close()


class PostgresMessages:
    """Frontend messages of the PostgreSQL protocol of the given kinds (type bytes)."""

    def __init__(self, kinds: bytes):
        self.kinds = kinds
        self.buffer = b""
        self.started = False

    def feed(self, data: bytes) -> int:
        self.buffer += data
        count = 0
        while True:
            if not self.started:  # SSLRequest / StartupMessage: a length, no type byte
                if len(self.buffer) < 8:
                    return count
                length, code = struct.unpack("!II", self.buffer[:8])
                if len(self.buffer) < length:
                    return count
                self.buffer = self.buffer[length:]
                if code != 80877103:  # not an SSLRequest: the startup message itself
                    self.started = True
                continue
            if len(self.buffer) < 5:
                return count
            kind = self.buffer[:1]
            (length,) = struct.unpack("!I", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return count
            self.buffer = self.buffer[1 + length :]
            if kind in self.kinds:
                count += 1


def PostgresStatements() -> PostgresMessages:  # noqa: N802  (a parser factory, like a class)
    """Statements: each ends with a Query ('Q', the simple protocol) or a Sync ('S', the
    extended one), one round trip each."""
    return PostgresMessages(b"QS")


def PostgresParses() -> PostgresMessages:  # noqa: N802
    """Statements PostgreSQL must parse and plan: a Query ('Q') or a Parse ('P'); a prepared
    statement's run sends neither, only Bind and Execute."""
    return PostgresMessages(b"QP")


class RedisCommands:
    """Commands in the Redis protocol (RESP): each request is an array of bulk strings."""

    def __init__(self):
        self.buffer = b""

    def feed(self, data: bytes) -> int:
        self.buffer += data
        count = 0
        while (end := self._command_end()) is not None:
            self.buffer = self.buffer[end:]
            count += 1
        return count

    def _command_end(self) -> int | None:
        buffer = self.buffer
        if not buffer.startswith(b"*"):
            line_end = buffer.find(b"\r\n")  # an inline command
            return None if line_end < 0 else line_end + 2
        line_end = buffer.find(b"\r\n")
        if line_end < 0:
            return None
        items, position = int(buffer[1:line_end]), line_end + 2
        for _ in range(items):
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                return None
            size = int(buffer[position + 1 : line_end])
            position = line_end + 2 + size + 2
            if position > len(buffer):
                return None
        return position
