"""Real TCP peers that misbehave on purpose: they stall, trickle, or never stop answering.

Each listens on 127.0.0.1, serves its clients in threads of its own, records what it did, and
is stopped by the test that started it (its threads end with their connections).
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field


@dataclass
class Peer:
    """A listening socket and the connections it accepted."""

    listener: socket.socket = field(default_factory=lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    connections: list[socket.socket] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Peer:
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)
            threading.Thread(target=self._serve_safely, args=(connection,), daemon=True).start()

    def _serve_safely(self, connection: socket.socket) -> None:
        try:
            self.serve(connection)
        except OSError:
            pass  # the client went away, which is what these peers wait for

    def serve(self, connection: socket.socket) -> None:
        """Accept and never say a word (the kernel completed the handshake)."""
        self.stopped.wait()

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()
        for connection in self.connections:
            connection.close()


def read_request_head(connection: socket.socket) -> bytes:
    """An HTTP request up to the end of its headers, then its body by Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    return head


@dataclass
class TrickleAnswer(Peer):
    """An HTTP receiver that reads the request, then sends `head` at once and `body` one byte
    every `interval` seconds: each read gets a byte in time, the answer never ends in time."""

    head: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 600\r\n\r\n"
    body: bytes = b"x" * 600
    interval: float = 0.1
    sent: int = 0

    def serve(self, connection: socket.socket) -> None:
        read_request_head(connection)
        connection.sendall(self.head)
        for byte in self.body:
            if self.stopped.wait(self.interval):
                return
            connection.sendall(bytes([byte]))
            self.sent += 1


@dataclass
class TrickleRelay(Peer):
    """A relay in front of a real server (`upstream`): what the client sends goes through at
    once, what the server answers reaches the client one byte every `interval` seconds. In
    front of a TLS server it trickles the handshake; in front of SMTP, the greeting."""

    upstream: int = 0
    interval: float = 0.1
    relayed: int = 0

    def serve(self, connection: socket.socket) -> None:
        server = socket.create_connection(("127.0.0.1", self.upstream))
        self.connections.append(server)
        threading.Thread(target=self._forward, args=(connection, server), daemon=True).start()
        while not self.stopped.is_set():
            chunk = server.recv(65536)
            if not chunk:
                return
            for byte in chunk:
                if self.stopped.wait(self.interval):
                    return
                connection.sendall(bytes([byte]))
                self.relayed += 1

    def _forward(self, client: socket.socket, server: socket.socket) -> None:
        try:
            while chunk := client.recv(65536):
                server.sendall(chunk)
        except OSError:
            pass


@dataclass
class EndlessAnswer(Peer):
    """An HTTP receiver whose answer is far larger than anyone should read: it writes as fast
    as the client takes it, and counts what it managed to send before the client hung up."""

    status: str = "200 OK"
    size: int = 512 * 1024 * 1024
    sent: int = 0
    finished: threading.Event = field(default_factory=threading.Event)

    def serve(self, connection: socket.socket) -> None:
        read_request_head(connection)
        connection.sendall(f"HTTP/1.1 {self.status}\r\nContent-Length: {self.size}\r\n\r\n".encode())
        chunk = b"y" * 65536
        try:
            while self.sent < self.size and not self.stopped.is_set():
                connection.sendall(chunk)
                self.sent += len(chunk)
        finally:
            self.finished.set()


@dataclass
class TlsServer(Peer):
    """A TLS server that completes handshakes and then says nothing; a peer to put a relay before."""

    context: ssl.SSLContext | None = None

    def serve(self, connection: socket.socket) -> None:
        with self.context.wrap_socket(connection, server_side=True) as tls:
            while not self.stopped.is_set() and tls.recv(65536):
                pass
