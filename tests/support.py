"""Test helpers: tenants and tokens, worker and beat processes, a recording HTTP receiver."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from app.severity import QUEUES

ROOT = Path(__file__).resolve().parent.parent


def sample_notification(event_type: str = "OPEN", message_id: str = "901", **changes: Any):
    """A notification as the worker hands it to a sender (a test send has no job id)."""
    from app.channels.base import Notification

    payload = {
        "alert_id": 42,
        "alert_type": "temperature_high",
        "severity": 4,
        "severity_label": "CRITICAL",
        "device_id": "sensor-17",
        "site_id": "plant-3",
        "tenant_id": "acme",
        "message": "Temperature 81.5 C above 75 C",
        "details": {"temperature": 81.5, "threshold": 75},
        "triggered_at": "2025-03-01T12:00:00+00:00",
        "event_type": event_type,
        "job_id": None if event_type == "TEST" else 901,
    }
    payload.update(changes)
    return Notification(payload=payload, message_id=message_id)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1, message: str = "condition") -> Any:
    """Poll until `predicate()` is truthy and return it; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {message}")
        time.sleep(interval)


@dataclass
class Tenant:
    """A tenant with an admin and a viewer, and their bearer headers."""

    tenant_id: str
    admin_email: str
    admin_token: str
    viewer_token: str

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    @property
    def viewer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.viewer_token}"}


def make_tenant(app) -> Tenant:
    from app.auth import issue_token
    from app.cli import upsert_user

    state = app.extensions["pulse"]
    tenant_id = "t-" + uuid.uuid4().hex[:12]
    admin_email = f"admin@{tenant_id}.test"
    with state.db.system_scope("tests") as session:
        upsert_user(session, tenant_id, admin_email, "customer_admin", "admin-password")
        upsert_user(session, tenant_id, f"viewer@{tenant_id}.test", "customer_viewer", "viewer-password")
    admin_token, _ = issue_token(state.settings, admin_email, tenant_id, "customer_admin")
    viewer_token, _ = issue_token(state.settings, f"viewer@{tenant_id}.test", tenant_id, "customer_viewer")
    return Tenant(tenant_id, admin_email, admin_token, viewer_token)


class CeleryProcess:
    """A `celery -A tasks <command>` subprocess with its own log file."""

    command: list[str] = []

    def __init__(self, name: str, env: dict[str, str] | None = None, ready_text: str = ""):
        self.name = f"{name}-{uuid.uuid4().hex[:6]}"
        self.env = {**os.environ, **(env or {})}
        self.log_path = ROOT / ".tmp" / f"{type(self).__name__.lower()}-{self.name}.log"
        self.ready_text = ready_text
        self.process: subprocess.Popen | None = None

    def args(self) -> list[str]:
        raise NotImplementedError

    def start(self, wait: bool = True) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tasks", *self.args()],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait and self.ready_text:
            wait_for(lambda: self.ready_text in self.log() or self.process.poll() is not None, 60, message=f"{self.name} to start")
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited at start:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: no hook, no warm shutdown."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "_log", None):
            self._log.close()


class WorkerProcess(CeleryProcess):
    """The Procfile's worker: threads pool, every delivery queue."""

    def __init__(self, name: str, env: dict[str, str] | None = None, concurrency: int = 8, loglevel: str = "INFO"):
        super().__init__(name, env, ready_text="ready.")
        self.concurrency = concurrency
        # DEBUG adds Celery's lines per task ("Task pulse.deliver[...] received", "succeeded").
        self.loglevel = loglevel

    def args(self) -> list[str]:
        return [
            "worker",
            "--pool", "threads",
            "--concurrency", str(self.concurrency),
            "--queues", ",".join(QUEUES),
            "--hostname", f"{self.name}@%h",
            "--loglevel", self.loglevel,
            "--without-gossip",
            "--without-mingle",
        ]


class BeatProcess(CeleryProcess):
    """The Procfile's beat: schedules the sweeper every SWEEP_INTERVAL_SECONDS."""

    def __init__(self, name: str = "beat", env: dict[str, str] | None = None):
        super().__init__(name, env, ready_text="beat: Starting")

    def args(self) -> list[str]:
        schedule = ROOT / ".tmp" / f"beat-{self.name}"
        return ["beat", "--loglevel", "INFO", "--schedule", str(schedule)]


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records requests and answers from a script.

    `script(path, [(status, headers, body), ...])` queues answers for a path, consumed in order;
    once used up (or with none), the path answers `default` (200). `delay` holds every answer.
    """

    default: tuple[int, dict[str, str], bytes] = (200, {}, b"ok")
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    # Requests being answered now, and the most there ever were at once (per path prefix).
    in_flight: int = 0
    max_in_flight: int = 0
    # Decides the answer from the request itself when set (else the scripts and the default).
    responder: Callable[[Received], tuple[int, dict[str, str], bytes]] | None = None
    # While set to an unset Event, every answer waits for it (at most `hold_seconds`).
    hold: threading.Event | None = None
    hold_seconds: float = 1.5
    _scripts: dict[str, list[tuple[int, dict[str, str], bytes]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver._lock:
                    request = Received(self.command, self.path, dict(self.headers.items()), body, time.time())
                    receiver.requests.append(request)
                    script = receiver._scripts.get(self.path)
                    if receiver.responder is not None:
                        status, headers, answer = receiver.responder(request)
                    else:
                        status, headers, answer = script.pop(0) if script else receiver.default
                    receiver.in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
                try:
                    if receiver.hold is not None:
                        receiver.hold.wait(receiver.hold_seconds)
                    if receiver.delay:
                        time.sleep(receiver.delay)
                finally:
                    with receiver._lock:
                        receiver.in_flight -= 1
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_POST = do_PUT = do_GET = _handle

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            # A burst of deliveries must not meet dropped SYNs (the default backlog is 5).
            request_queue_size = 1024
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str = "/hook") -> str:
        # The path carries the receiver's own id, so a late delivery meant for an earlier
        # test's receiver on a reused port can never be counted here.
        return f"http://127.0.0.1:{self.port}{self.prefix}{path}"

    @property
    def prefix(self) -> str:
        if not hasattr(self, "_prefix"):
            self._prefix = "/r-" + uuid.uuid4().hex[:8]
        return self._prefix

    def script(self, path: str, answers: list[tuple[int, dict[str, str], bytes]]) -> None:
        with self._lock:
            self._scripts[self.prefix + path] = list(answers)

    def at(self, path: str = "/hook") -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == self.prefix + path]


def create_channel(client, tenant: Tenant, channel_type: str, config: dict[str, Any], name: str | None = None) -> dict:
    response = client.post(
        "/api/v2/channels",
        json={"name": name or f"{channel_type} channel", "channel_type": channel_type, "config": config},
        headers=tenant.admin,
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def create_rule(client, tenant: Tenant, channel_id: int, **filters: Any) -> dict:
    response = client.post("/api/v2/routing-rules", json={"channel_id": channel_id, **filters}, headers=tenant.admin)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def post_alert(client, tenant: Tenant, **fields: Any) -> dict:
    body = {"device_id": "pump-1", "alert_type": "overheat", "severity": 4, "message": "Pump temperature high", **fields}
    response = client.post("/api/v2/alerts", json=body, headers=tenant.admin)
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def deliveries(client, tenant: Tenant, **params: Any) -> list[dict]:
    response = client.get("/api/v2/deliveries", query_string={"limit": 500, **params}, headers=tenant.admin)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def settled(client, tenant: Tenant, count: int) -> list[dict] | None:
    """The tenant's jobs once `count` exist and every one is DELIVERED, FAILED or THROTTLED."""
    jobs = deliveries(client, tenant)
    if len(jobs) >= count and all(job["status"] in ("DELIVERED", "FAILED", "THROTTLED") for job in jobs):
        return jobs
    return None


def settings_with(env: dict[str, str]):
    """The settings a process started with this run's environment plus `env` would read."""
    from app.config import Settings

    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        return Settings.from_env()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class PrivateStack:
    """The API and its own worker (and beat) on a Redis database nothing else in the suite uses.

    Tests that change what a worker does (its settings, killing it) run their jobs here, so
    the session's worker never takes one of them, and theirs never take the session's. The
    API reads the same settings as the stack's processes.
    """

    def __init__(self, broker_db: int, env: dict[str, str] | None = None):
        from app import create_app

        base = os.environ["PULSE_TEST_REDIS_URL"].rsplit("/", 1)[0]
        self.broker_url = f"{base}/{broker_db}"
        # Its Redis state (circuits, bulkheads, tenant feeds) is private too: another test's
        # open circuit is not this stack's.
        self.env = {"CELERY_BROKER_URL": self.broker_url, "REDIS_URL": self.broker_url, **(env or {})}
        self.flush_broker()
        self.app = create_app(settings_with(self.env), test_config={"TESTING": True})
        self.client = self.app.test_client()
        self.processes: list[CeleryProcess] = []

    def flush_broker(self) -> None:
        import redis

        client = redis.Redis.from_url(self.broker_url)
        client.flushdb()
        client.close()

    def worker(self, name: str = "worker", concurrency: int = 8, **env: str) -> WorkerProcess:
        process = WorkerProcess(name, {**self.env, **env}, concurrency=concurrency)
        process.start()
        self.processes.append(process)
        return process

    def beat(self, **env: str) -> BeatProcess:
        process = BeatProcess("beat", {**self.env, **env})
        process.start()
        self.processes.append(process)
        return process

    def tenant(self) -> Tenant:
        return make_tenant(self.app)

    @property
    def db(self):
        return self.app.extensions["pulse"].db

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.flush_broker()
        self.app.extensions["pulse"].db.dispose()
