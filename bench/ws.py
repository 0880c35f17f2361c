"""Benchmark of the live feed: K WebSocket clients subscribed to alerts on one web process.

Run it against a web process started as the Procfile starts it, with the same environment
(DATABASE_URL, REDIS_URL, SECRET_KEY), for example:

    gunicorn --config deploy/gunicorn.conf.py --bind 127.0.0.1:8000 "app:create_app()" &
    python bench/ws.py --url http://127.0.0.1:8000 --web-pid <gunicorn master's pid> --clients 100 1000

For each K it creates a tenant of its own (through `flask create-user`), then:

1. without clients: posts alerts at a steady rate (each alert is opened, then closed: two
   state changes, two events) and counts the database's queries;
2. connects K clients (websocket-client, spread over a few processes, each reading its sockets
   with a selector), subscribes each to alerts and lets them sit idle: database queries
   while idle (the seeds' per-connection polling would make K/5 queries per second here);
3. with clients: the same posting as in 1, recording when every client receives every
   `alert` message.

Latency is measured from the event's own timestamp (`triggered_at` of OPEN, `closed_at` of
CLOSED), which the API takes inside the transaction, a few milliseconds before it commits, to
the moment a client process reads the message: an upper bound of commit-to-receipt, on one
machine and one clock. It is also given from the moment the poster got the API's answer (after the commit and
the publish), which can be slightly negative.

Database load is read from PostgreSQL's own statistics for the database: with the
`pg_stat_statements` extension installed there, queries (every statement but BEGIN, COMMIT and
ROLLBACK); without it, transactions from `pg_stat_database` (every unit of work of Pulse is one
transaction, and the pool's pre-ping another). The web process's memory is the RSS of its
gunicorn worker, from /proc.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import selectors
import statistics
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import psycopg2
import requests
import websocket

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import normalise_database_url  # noqa: E402


def raise_open_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# Database and process figures -----------------------------------------------------------------


class DatabaseCounter:
    """Work done by one database, read from PostgreSQL's statistics.

    With the pg_stat_statements extension: queries, that is every statement but BEGIN, COMMIT
    and ROLLBACK (the pool's pre-ping `SELECT 1` included, and counted apart too), less this
    bench's own reads. Without it: transactions from pg_stat_database, which backends may
    report up to 10 s late (PostgreSQL 15 flushes an idle backend's counters lazily), so each
    snapshot then waits 11 s first.
    """

    def __init__(self, url: str):
        dsn = normalise_database_url(url).replace("postgresql+psycopg2://", "postgresql://")
        self.connection = psycopg2.connect(dsn)
        self.connection.autocommit = True
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            self.name = cursor.fetchone()[0]
            cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
            self.has_statements = cursor.fetchone() is not None
        self.unit = "queries" if self.has_statements else "transactions"

    def snapshot(self) -> tuple[float, int, int]:
        with self.connection.cursor() as cursor:
            if self.has_statements:
                cursor.execute(
                    "SELECT coalesce(sum(calls) FILTER (WHERE query NOT ILIKE '%pg_stat%'), 0),"
                    " coalesce(sum(calls) FILTER (WHERE query = 'SELECT $1' OR query = 'SELECT 1'), 0)"
                    " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
                    " WHERE d.datname = current_database() AND upper(query) NOT IN ('BEGIN', 'COMMIT', 'ROLLBACK')"
                )
                queries, pings = cursor.fetchone()
                return time.monotonic(), int(queries), int(pings)
            time.sleep(11)
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
            )
            # Less this bench's own two autocommit reads of the previous snapshot.
            return time.monotonic(), int(cursor.fetchone()[0]) - 2, 0


def rate(before, after) -> tuple[float, float]:
    """Per second between two snapshots: (queries or transactions, pings)."""
    seconds = after[0] - before[0]
    return (after[1] - before[1]) / seconds, (after[2] - before[2]) / seconds


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker_pids(master: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{master}/task").iterdir():
        children += [int(pid) for pid in (task / "children").read_text().split()]
    return children


# Poster -------------------------------------------------------------------------------------


class Poster:
    """Opens and closes alerts at a steady rate through the API, noting each event's times."""

    def __init__(self, url: str, token: str):
        self.url = url.rstrip("/") + "/api/v2"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.events: dict[tuple[int, str], tuple[float, float]] = {}

    def _post(self, path: str, body: dict | None = None) -> dict:
        response = self.session.post(self.url + path, json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def run(self, alerts_per_second: float, seconds: float) -> int:
        interval = 1.0 / alerts_per_second
        deadline = time.monotonic() + seconds
        next_at = time.monotonic()
        count = 0
        while time.monotonic() < deadline:
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            opened = self._post(
                "/alerts",
                {
                    "device_id": "bench-device",
                    "alert_type": "bench",
                    "severity": 3,
                    "message": "benchmark alert",
                    "fingerprint": uuid.uuid4().hex,
                },
            )
            answered = time.time()
            self.events[(opened["alert_id"], "OPEN")] = (_epoch(opened["triggered_at"]), answered)
            closed = self._post(f"/alerts/{opened['alert_id']}/close")
            answered = time.time()
            self.events[(opened["alert_id"], "CLOSED")] = (_epoch(closed["closed_at"]), answered)
            count += 1
        return count


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


# Clients ------------------------------------------------------------------------------------


def client_process(ws_url: str, count: int, ready, start_reading, stop, results) -> None:
    """Hold `count` connections subscribed to alerts; note when each alert message arrives."""
    raise_open_file_limit()
    connections = []
    for _ in range(count):
        ws = websocket.create_connection(ws_url, timeout=60, skip_utf8_validation=True)
        ws.send(json.dumps({"action": "subscribe", "type": "alerts"}))
        assert json.loads(ws.recv())["type"] == "subscribed"
        assert json.loads(ws.recv())["type"] == "alerts"
        connections.append(ws)
    ready.put(count)
    selector = selectors.DefaultSelector()
    for index, ws in enumerate(connections):
        selector.register(ws.sock, selectors.EVENT_READ, index)
    receipts: dict[tuple[int, str], list[float]] = defaultdict(list)
    lists = 0
    lost = 0
    open_sockets = len(connections)
    while not stop.is_set() and open_sockets:
        for key, _ in selector.select(timeout=0.2):
            ws = connections[key.data]
            try:
                opcode, frame = ws.recv_data_frame(True)  # answers pings, returns on them too
            except (websocket.WebSocketException, OSError):
                selector.unregister(key.fileobj)
                open_sockets -= 1
                lost += 1
                continue
            now = time.time()
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue
            message = json.loads(frame.data)
            if message["type"] == "alert" and start_reading.is_set():
                receipts[(message["alert"]["alert_id"], message["event"])].append(now)
            elif message["type"] == "alerts":
                lists += 1
    results.put((dict(receipts), lists, lost))
    for ws in connections:
        try:
            ws.close(timeout=0.5)
        except (websocket.WebSocketException, OSError):
            pass


# One run ------------------------------------------------------------------------------------


def make_tenant_token() -> str:
    tenant = "bench-ws-" + uuid.uuid4().hex[:8]
    output = subprocess.run(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "app",
            "create-user",
            "--tenant",
            tenant,
            "--email",
            f"admin@{tenant}.bench",
            "--role",
            "customer_admin",
            "--password",
            uuid.uuid4().hex,
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return output.strip().splitlines()[-1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def run(args, clients: int) -> None:
    token = make_tenant_token()
    counter = DatabaseCounter(args.database_url)
    workers = worker_pids(args.web_pid) if args.web_pid else []

    def memory() -> float:
        return sum(rss_mib(pid) for pid in workers)

    print(f"\n== K = {clients} clients subscribed to alerts, one web process ({args.url}) ==")
    print(f"alerts: {args.rate:g}/s for {args.seconds:g} s, each opened then closed ({2 * args.rate:g} changes/s)")
    rss_start = memory()

    # 1. Without clients.
    poster = Poster(args.url, token)
    before = counter.snapshot()
    posted = poster.run(args.rate, args.seconds)
    without = rate(before, counter.snapshot())

    # 2. K idle clients.
    ws_url = args.url.replace("http", "ws", 1).rstrip("/") + f"/api/v2/ws?token={token}"
    ready, results = multiprocessing.Queue(), multiprocessing.Queue()
    start_reading, stop = multiprocessing.Event(), multiprocessing.Event()
    shares = [clients // args.processes + (1 if i < clients % args.processes else 0) for i in range(args.processes)]
    processes = [
        multiprocessing.Process(target=client_process, args=(ws_url, share, ready, start_reading, stop, results))
        for share in shares
        if share
    ]
    connect_started = time.monotonic()
    for process in processes:
        process.start()
    connected = sum(ready.get(timeout=300) for _ in processes)
    connect_seconds = time.monotonic() - connect_started
    time.sleep(2)
    rss_idle = memory()
    before = counter.snapshot()
    time.sleep(args.idle_seconds)
    idle = rate(before, counter.snapshot())

    # 3. With clients.
    poster = Poster(args.url, token)
    start_reading.set()
    before = counter.snapshot()
    posted_with = poster.run(args.rate, args.seconds)
    with_clients = rate(before, counter.snapshot())
    rss_loaded = memory()
    time.sleep(2)  # let the last pushes land
    stop.set()
    receipts: dict[tuple[int, str], list[float]] = defaultdict(list)
    lists = lost = 0
    for _ in processes:
        part, part_lists, part_lost = results.get(timeout=120)
        for key, times in part.items():
            receipts[key] += times
        lists += part_lists
        lost += part_lost
    for process in processes:
        process.join(30)

    from_commit, from_answer = [], []
    for key, (committed, answered) in poster.events.items():
        for received in receipts.get(key, []):
            from_commit.append((received - committed) * 1000)
            from_answer.append((received - answered) * 1000)
    expected = len(poster.events) * connected

    print(f"connected {connected} clients in {connect_seconds:.1f} s; {lost} connections lost during the run")
    print(
        f"latency commit -> client (event timestamp -> receipt), ms: p50 {percentile(from_commit, 50):.1f}  "
        f"p99 {percentile(from_commit, 99):.1f}  max {max(from_commit):.1f}  mean {statistics.fmean(from_commit):.1f}"
    )
    print(
        f"latency API answer -> client, ms: p50 {percentile(from_answer, 50):.1f}  p99 {percentile(from_answer, 99):.1f}"
    )
    print(f"receipts: {len(from_commit)} of {expected} expected ({len(poster.events)} events x {connected} clients)")
    print(
        f"alert lists received: {lists} ({lists / max(1, connected):.1f} per client for {len(poster.events)} changes)"
    )
    if workers:
        print(
            f"web worker RSS, MiB: before clients {rss_start:.0f}, {connected} idle clients {rss_idle:.0f}, "
            f"after the load {rss_loaded:.0f}"
        )
    print(f"database {counter.name}, {counter.unit} per second:")
    for label, (per_second, pings), alerts in (
        ("without clients, posting", without, posted),
        (f"{connected} clients, idle", idle, 0),
        (f"{connected} clients, posting", with_clients, posted_with),
    ):
        line = f"  {label:<28} {per_second:7.1f}"
        if counter.has_statements:
            line += f"  (of which pool pings {pings:5.1f})"
        print(line + (f"   {alerts} alerts posted" if alerts else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the web process")
    parser.add_argument("--web-pid", type=int, help="the gunicorn master's pid (for the worker's RSS)")
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 1000], help="K, one run each")
    parser.add_argument("--rate", type=float, default=2.0, help="alerts per second (each opened and closed)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each posting phase")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()
    if not args.database_url or "postgres" not in args.database_url:
        parser.error("DATABASE_URL (PostgreSQL, the web process's database) is needed to count queries")
    raise_open_file_limit()
    for clients in args.clients:
        run(args, clients)


if __name__ == "__main__":
    main()
