"""One client of the live feed: its subscriptions, and a bounded outbox drained by a writer of its own.

Pushing never waits: a client that stops reading fills only its own outbox, and when that
overflows the client is dropped. Nobody else ever waits for it.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import Any, Iterable, Protocol

log = logging.getLogger(__name__)

CLOSE_GOING_AWAY = 1001


class TransportClosed(Exception):
    """The client's connection is gone: nothing more can be sent on it."""


class Transport(Protocol):
    """How a connection reaches its client (the WebSocket in `app.live.ws`)."""

    def send(self, text: str) -> None:
        """Write one text message; TransportClosed if the connection is gone or the write timed out."""

    def abort(self) -> None:
        """Drop the connection at once, without a closing handshake."""

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake with `code`."""


_STOP = object()


class Connection:
    """One client of the feed: who it is, what it listens to, and its own outbox and writer."""

    def __init__(self, tenant_id: str, subject: str, transport: Transport, outbox_size: int):
        self.tenant_id = tenant_id
        self.subject = subject
        self.devices: set[str] = set()
        self.alerts = False
        self.opened_at = time.monotonic()
        self.drop_reason: str | None = None
        self._closed = False
        self._transport = transport
        self._outbox: queue.Queue = queue.Queue(maxsize=max(1, outbox_size))
        self._writer = threading.Thread(target=self._drain, name="live-feed-writer", daemon=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        self._writer.start()

    def push(self, text: str) -> bool:
        """Queue one message without waiting; a full outbox drops the connection instead."""
        if self._closed:
            return False
        try:
            self._outbox.put_nowait(text)
        except queue.Full:
            self.drop(f"outbox full ({self._outbox.maxsize} messages): the client is not reading", logging.WARNING)
            return False
        return True

    def drop(self, reason: str, level: int = logging.INFO) -> None:
        """Disconnect the client now (from any thread); its handler then cleans up."""
        if self._closed:
            return
        self._closed = True
        self.drop_reason = reason
        log.log(level, "live feed: dropping a connection of tenant %s: %s", self.tenant_id, reason)
        self._transport.abort()
        self._stop_writer()

    def go_away(self, reason: str) -> None:
        """Ask the client to reconnect later (close code 1001); its handler then cleans up."""
        self._closed = True
        self._stop_writer()
        try:
            self._transport.close(CLOSE_GOING_AWAY, reason)
        except TransportClosed:
            pass

    def close(self) -> None:
        """The connection has ended: stop the writer; whatever is still queued is discarded."""
        self._closed = True
        self._stop_writer()

    def _stop_writer(self) -> None:
        while True:
            try:
                self._outbox.put_nowait(_STOP)
                return
            except queue.Full:
                try:
                    self._outbox.get_nowait()
                except queue.Empty:
                    pass

    def _drain(self) -> None:
        while True:
            text = self._outbox.get()
            if text is _STOP or self._closed:
                return
            try:
                self._transport.send(text)
            except TransportClosed as exc:
                self.drop(f"write failed: {exc}")
                return


def encode(message: dict[str, Any]) -> str:
    """A server message as the text frame that carries it."""
    return json.dumps(message, separators=(",", ":"), default=str)


def broadcast(connections: Iterable[Connection], message: dict[str, Any]) -> None:
    """Push one message to every connection: one encoding, shared by every outbox."""
    text = encode(message)
    for connection in connections:
        connection.push(text)
