"""GET /api/v2/ws?token=<JWT>: the WebSocket route of the live feed (DESIGN §8), a thin shell over `LiveFeed`.

`create_app()` registers it through `init_app`, beside the REST API rather than inside it:
the token comes in the query string (browsers cannot set headers on a WebSocket) and is
checked here, after the handshake, so that a refusal carries its close code. The access log
names the path without its query string, so the token never reaches a log.
"""

from __future__ import annotations

import socket
import threading

from flask import Blueprint, Flask, current_app, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed
from werkzeug.routing.exceptions import WebsocketMismatch

from app.auth import Refused, authorize
from app.live.connection import TransportClosed
from app.live.feed import LiveFeed
from app.problems import Problem, problem_response
from app.web import pulse

# A subscription message is a few dozen bytes; anything near this is not one.
MAX_CLIENT_MESSAGE_BYTES = 64 * 1024

sock = Sock()
bp = Blueprint("live", __name__, url_prefix="/api/v2")


class _WholeFrameSocket:
    """The client socket as simple-websocket uses it, with every write whole and one at a time.

    simple-websocket writes with `socket.send`, which can write part of a frame when the
    client's buffer is full, and its reader thread sends pings and pongs while the
    connection's writer sends messages. `sendall` under a lock keeps frames whole and
    unmixed, and the socket timeout bounds how long a client that stopped reading can hold
    one write (the writer then drops it).
    """

    def __init__(self, raw: socket.socket, write_timeout: float):
        self._raw = raw
        self._lock = threading.Lock()
        # Reads are not affected in practice: with pings enabled simple-websocket only reads
        # once the socket is readable.
        raw.settimeout(write_timeout)

    def send(self, data: bytes) -> int:
        with self._lock:
            self._raw.sendall(data)
        return len(data)

    def __getattr__(self, name: str):
        return getattr(self._raw, name)


class WebSocketTransport:
    """`app.live.connection.Transport` over a simple-websocket connection."""

    def __init__(self, ws):
        self._ws = ws

    def send(self, text: str) -> None:
        try:
            self._ws.send(text)
        except (ConnectionClosed, OSError) as exc:
            raise TransportClosed(type(exc).__name__) from None

    def abort(self) -> None:
        try:
            self._ws.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self, code: int, reason: str) -> None:
        try:
            self._ws.close(reason=code, message=reason)
        except (ConnectionClosed, OSError) as exc:
            raise TransportClosed(type(exc).__name__) from None
        finally:
            # Wake the handler waiting in receive(): it ends now rather than when (if ever)
            # the client answers the close frame.
            self._ws.event.set()


@sock.route("/ws", bp=bp)
def feed(ws):
    """One client of the live feed: check its token, then relay its messages until it leaves."""
    settings = pulse().settings
    ws.sock = _WholeFrameSocket(ws.sock, settings.ws_write_timeout_seconds)
    try:
        principal = authorize(settings, request.args.get("token"), pulse().tenants.exists)
    except Refused as refusal:
        ws.close(reason=refusal.code, message=_close_reason(refusal.reason))
        return
    live = live_feed()
    connection = live.connect(principal.tenant_id, principal.subject, WebSocketTransport(ws))
    try:
        while True:
            message = ws.receive()
            if message is not None:
                live.handle(connection, message)
    except ConnectionClosed:
        pass
    finally:
        live.disconnect(connection)


def _close_reason(text: str) -> str:
    """A close frame's reason is at most 123 bytes of UTF-8."""
    return text.encode("utf-8")[:123].decode("utf-8", "ignore")


def _not_a_websocket(_exc: WebsocketMismatch):
    return problem_response(
        Problem(400, "this endpoint speaks WebSocket only: connect with an Upgrade: websocket request")
    )


def live_feed() -> LiveFeed:
    """The current app's feed."""
    return current_app.extensions["live"]


def init_app(app: Flask) -> None:
    """The process's feed, its route with the options of every connection, and a clean 400 for plain HTTP."""
    services = app.extensions["pulse"]
    settings = services.settings
    app.extensions["live"] = LiveFeed(
        db=services.db,
        store=app.extensions["telemetry"],
        redis_url=settings.redis_url,
        poll_seconds=settings.ws_poll_seconds,
        outbox_size=settings.ws_outbox_messages,
    )
    app.config.setdefault(
        "SOCK_SERVER_OPTIONS",
        {"ping_interval": settings.ws_ping_seconds, "max_message_size": MAX_CLIENT_MESSAGE_BYTES},
    )
    app.register_blueprint(bp)
    sock.init_app(app)
    app.register_error_handler(WebsocketMismatch, _not_a_websocket)
