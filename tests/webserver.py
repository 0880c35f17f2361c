"""A real web process for tests: gunicorn with the project's own configuration on a free port.

It inherits the test environment (the session's PostgreSQL database and Redis), so tenants
made in the test process are valid there, and its output (access log included) goes to a
file the tests can read.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from typing import Any

import requests
import websocket

from tests.support import ROOT, free_port, wait_for


class WebServer:
    """`gunicorn --config deploy/gunicorn.conf.py app:create_app()`, as the Procfile runs it."""

    def __init__(self, name: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.env = {**os.environ, **(env or {})}
        self.log_path = ROOT / ".tmp" / f"gunicorn-{name}-{uuid.uuid4().hex[:6]}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, token: str | None) -> str:
        query = f"?token={token}" if token is not None else ""
        return f"ws://127.0.0.1:{self.port}/api/v2/ws{query}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                "deploy/gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{self.port}",
                # Several test servers run at once: no shared control socket.
                "--no-control-socket",
                "app:create_app()",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self._ready, 30, message=f"gunicorn on port {self.port}")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"gunicorn exited at start:\n{self.log()[-3000:]}")
        try:
            return requests.get(self.url + "/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(25)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_size(self) -> int:
        return len(self.log())

    def wait_for_log(self, text: str, since: int = 0, timeout: float = 15.0) -> str:
        """The first log line after offset `since` that contains `text`."""

        def found():
            for line in self.log()[since:].splitlines():
                if text in line:
                    return line
            return None

        return wait_for(found, timeout, message=f"log line containing {text!r}")

    def connect(self, token: str | None, **options: Any) -> "Client":
        # websocket-client checks UTF-8 in pure Python unless told not to: far slower than the server.
        options.setdefault("skip_utf8_validation", True)
        return Client(websocket.create_connection(self.ws_url(token), timeout=10, **options))


class Client:
    """A websocket-client connection speaking the feed's JSON messages."""

    def __init__(self, ws: websocket.WebSocket):
        self.ws = ws

    def send(self, message: Any) -> None:
        self.ws.send(message if isinstance(message, str) else json.dumps(message))

    def receive(self, timeout: float = 10.0) -> dict:
        """The next JSON message (pings are answered on the way)."""
        self.ws.settimeout(timeout)
        return json.loads(self.ws.recv())

    def receive_until(self, predicate, timeout: float = 10.0) -> tuple[dict, list[dict]]:
        """The first message matching `predicate`, and those received before it."""
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            message = self.receive(max(0.1, deadline - time.monotonic()))
            if predicate(message):
                return message, skipped
            skipped.append(message)
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching message within {timeout} s; got {skipped}")

    def subscribe_alerts(self) -> list[dict]:
        """Subscribe to alerts; the list that follows the confirmation."""
        self.send({"action": "subscribe", "type": "alerts"})
        assert self.receive() == {"type": "subscribed", "channel": "alerts"}
        listing = self.receive()
        assert listing["type"] == "alerts", listing
        return listing["alerts"]

    def subscribe_device(self, device_id: str) -> None:
        self.send({"action": "subscribe", "type": "device", "device_id": device_id})
        assert self.receive() == {"type": "subscribed", "channel": "device", "device_id": device_id}

    def close_code(self, timeout: float = 10.0) -> tuple[int, str]:
        """Read frames up to the server's close frame: its code and reason."""
        self.ws.settimeout(timeout)
        while True:
            frame = self.ws.recv_frame()
            if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(frame.data[:2], "big"), frame.data[2:].decode()

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        except (websocket.WebSocketException, OSError):
            pass


def stalled_connection(server: WebServer, token: str, receive_buffer: int = 4096) -> Client:
    """A client with a tiny receive buffer that will never read: a stalled dashboard."""
    return server.connect(token, sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)])
