"""Pulse side by side with the anchors it is measured against, in one session on one machine.

Three systems deliver N alerts x M webhook receivers to the same kind of HTTP sink, one alert
per request from 8 client threads:

(a) a bare Celery webhook sender (bench/bare_celery.py): one task per delivery, the threads
    pool with the concurrency of Pulse's worker, `requests`, no database; the client
    publishes the M tasks of each alert itself (there is no API to ingest through);
(b) Pulse end to end, as the Procfile runs it: gunicorn (`web`) and one Celery worker
    (`worker`), on PostgreSQL and a Redis of its own;
(c) Prometheus Alertmanager (Debian's prometheus-alertmanager, installed if missing when
    run as root), `group_by: ['...']`, `group_wait: 0s`, one route per receiver with
    `continue: true`.

For each it prints deliveries/s (first post to last receipt), alerts ingested/s, latency to
receipt (p50/p99: from the alert's commit for Pulse, from the publish for bare Celery, from
`startsAt` for Alertmanager), Pulse's ratios to (a) and (c), and Pulse's CPU milliseconds per
delivery (worker) and per alert (web) read from /proc. Each figure is the median of `--runs`
runs. A run that does not account for every delivery (received = expected, duplicates
counted) is void and says so.

    .venv/bin/python bench/compare.py                      # 2,000 alerts x 3 receivers, 3 runs
    .venv/bin/python bench/compare.py --quick              # tiny numbers: does it still run?
    .venv/bin/python bench/compare.py --only pulse --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import requests
from celery import Celery

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ROOT,
    Api,
    PrivateRedis,
    Sink,
    Stack,
    commit_to_receipt_ms,
    cpu_seconds,
    free_port,
    median,
    percentile,
    post_alerts,
)

PG_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@dataclass
class Run:
    """What one run of one system measured."""

    system: str
    expected: int
    received: int = 0
    duplicates: int = 0
    deliveries_per_s: float = 0.0
    ingest_per_s: float | None = None
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    worker_cpu_ms_per_delivery: float | None = None
    web_cpu_ms_per_alert: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def void(self) -> bool:
        return self.received != self.expected

    def finish(self, sink: Sink, started: float) -> None:
        arrivals = list(sink.arrivals.values())
        self.received = len(arrivals)
        self.duplicates = sink.duplicates
        if arrivals:
            last = max(at for at, *_ in arrivals)
            self.deliveries_per_s = len(arrivals) / max(last - started, 1e-9)
            latencies = commit_to_receipt_ms(arrivals)
            self.p50_ms, self.p99_ms = median(latencies), percentile(latencies, 0.99)


def wait_for_receipts(sink: Sink, expected: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while sink.count() < expected and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # late duplicates are counted too


def payload_for(number: int) -> dict:
    return {"device_id": f"bench-{number}", "alert_type": "load", "severity": 2, "message": f"bench alert {number}"}


# (a) bare Celery ------------------------------------------------------------------------


def run_bare(alerts: int, receivers: int, concurrency: int) -> Run:
    run = Run("bare Celery", alerts * receivers)
    redis = PrivateRedis()
    sink = Sink()
    env = {**os.environ, "BARE_BROKER_URL": redis.url}
    log = open(ROOT / ".tmp" / f"bare-celery-{os.getpid()}.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bench.bare_celery", "worker", "--pool", "threads", "--concurrency",
         str(concurrency), "--queues", "bare", "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        # A client app of this run's own: its connection pool is bound to this run's broker.
        bare = Celery("bare-client", broker=redis.url)
        time.sleep(3)
        before = cpu_seconds(worker.pid)

        def publish(number: int) -> None:
            sent_at = datetime.now(timezone.utc).isoformat()
            with bare.producer_or_acquire() as producer:
                for receiver in range(receivers):
                    payload = {**payload_for(number), "id": f"{number}-{receiver}", "triggered_at": sent_at}
                    bare.send_task("bare.deliver", args=[f"{sink.url}/r{receiver}", payload], queue="bare", producer=producer)

        started = time.time()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(publish, range(alerts)))
        bare.close()
        wait_for_receipts(sink, run.expected, timeout=300)
        run.finish(sink, started)
        run.worker_cpu_ms_per_delivery = (cpu_seconds(worker.pid) - before) * 1000 / max(run.received, 1)
    finally:
        worker.terminate()
        worker.wait(20)
        log.close()
        sink.close()
        redis.close()
    return run


# (b) Pulse ------------------------------------------------------------------------------


def run_pulse(alerts: int, receivers: int, concurrency: int, env: dict[str, str], label: str = "Pulse", web_workers: int = 1) -> Run:
    run = Run(label, alerts * receivers)
    sink = Sink()
    stack = Stack(PG_ADMIN_URL, env=env, name="compare").create()
    try:
        web = stack.web(web_workers)
        stack.worker("worker", concurrency)
        api = Api(web, stack.token())
        for receiver in range(receivers):
            api.webhook(f"{sink.url}/r{receiver}")
        web_pid, worker_pid = stack.processes["web"].pid, stack.processes["worker"].pid
        web_before, worker_before = cpu_seconds(web_pid), cpu_seconds(worker_pid)
        started, posted = post_alerts(api, alerts, payload_for, threads=8)
        run.ingest_per_s = alerts / (posted - started)
        web_cpu = cpu_seconds(web_pid) - web_before
        wait_for_receipts(sink, run.expected, timeout=600)
        run.finish(sink, started)
        run.worker_cpu_ms_per_delivery = (cpu_seconds(worker_pid) - worker_before) * 1000 / max(run.received, 1)
        run.web_cpu_ms_per_alert = web_cpu * 1000 / alerts
    finally:
        stack.stop()
        stack.drop()
        sink.close()
    return run


# (c) Alertmanager -----------------------------------------------------------------------


def alertmanager_binary() -> str | None:
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing Debian's prometheus-alertmanager ...", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-qq", "prometheus-alertmanager"], check=False, capture_output=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        found = shutil.which("prometheus-alertmanager")
    return found


def alertmanager_deliveries(path: str, headers, body: bytes) -> list[tuple[str, dict]]:
    notification = json.loads(body)
    return [(alert["labels"]["id"], {"triggered_at": alert["startsAt"]}) for alert in notification.get("alerts", [])]


def run_alertmanager(alerts: int, receivers: int) -> Run:
    run = Run("Alertmanager", alerts * receivers)
    binary = alertmanager_binary()
    if binary is None:
        run.notes.append("not installed: apt-get install prometheus-alertmanager")
        return run
    sink = Sink(deliveries=alertmanager_deliveries)
    directory = Path(tempfile.mkdtemp(prefix="alertmanager-", dir=ROOT / ".tmp"))
    port = free_port()
    routes = "\n".join(f"    - receiver: r{n}\n      continue: true" for n in range(receivers))
    hooks = "\n".join(f"  - name: r{n}\n    webhook_configs:\n      - url: {sink.url}/r{n}\n        send_resolved: false" for n in range(receivers))
    (directory / "alertmanager.yml").write_text(
        f"route:\n  receiver: r0\n  group_by: ['...']\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 24h\n"
        f"  routes:\n{routes}\nreceivers:\n{hooks}\n"
    )
    process = subprocess.Popen(
        [binary, f"--config.file={directory / 'alertmanager.yml'}", f"--storage.path={directory}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=open(directory / "log", "wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/api/v2/alerts"
    try:
        deadline = time.time() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.time() > deadline:
                run.notes.append("did not start")
                return run
            time.sleep(0.2)
        local = threading.local()
        run_id = uuid.uuid4().hex[:6]

        def post(number: int) -> None:
            session = getattr(local, "session", None) or requests.Session()
            local.session = session
            now = datetime.now(timezone.utc).isoformat()
            alert = {"labels": {"alertname": "load", "id": f"{run_id}-{number}", "device_id": f"bench-{number}"}, "startsAt": now}
            session.post(base, json=[alert], timeout=30).raise_for_status()

        started = time.time()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(post, range(alerts)))
        run.ingest_per_s = alerts / (time.time() - started)
        wait_for_receipts(sink, run.expected, timeout=300)
        run.finish(sink, started)
    finally:
        process.terminate()
        process.wait(20)
        sink.close()
        shutil.rmtree(directory, ignore_errors=True)
    return run


# The report -----------------------------------------------------------------------------


def medians(runs: list[Run]) -> Run:
    """One row from several runs: the median of each figure (of the runs that are not void)."""
    good = [run for run in runs if not run.void] or runs
    row = Run(runs[0].system, runs[0].expected)
    row.received = min(run.received for run in runs)
    row.duplicates = max(run.duplicates for run in runs)
    for name in ("deliveries_per_s", "ingest_per_s", "p50_ms", "p99_ms", "worker_cpu_ms_per_delivery", "web_cpu_ms_per_alert"):
        values = [getattr(run, name) for run in good if getattr(run, name) is not None]
        setattr(row, name, median(values) if values else None)
    row.notes = sorted({note for run in runs for note in run.notes})
    if any(run.void for run in runs):
        row.notes.append(f"{sum(run.void for run in runs)} of {len(runs)} runs void (received != expected)")
    return row


def show(value, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def report(rows: dict[str, Run], runs: int) -> None:
    print(f"\n{'system':<28} {'deliveries/s':>12} {'alerts in/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'worker ms/dlv':>13} {'web ms/alert':>12}  received")
    for row in rows.values():
        print(
            f"{row.system:<28} {show(row.deliveries_per_s):>12} {show(row.ingest_per_s):>11} {show(row.p50_ms):>8} {show(row.p99_ms):>8} "
            f"{show(row.worker_cpu_ms_per_delivery, '.2f'):>13} {show(row.web_cpu_ms_per_alert, '.2f'):>12}  "
            f"{row.received}/{row.expected} dup {row.duplicates}{'  VOID' if row.void else ''}  {'; '.join(row.notes)}"
        )
    pulse, bare, am = rows.get("pulse"), rows.get("bare"), rows.get("alertmanager")
    print(f"(medians of {runs} run(s) each)")
    if pulse and bare and bare.deliveries_per_s:
        print(f"Pulse / bare Celery deliveries/s:   {pulse.deliveries_per_s / bare.deliveries_per_s:.2f}x   (goal >= 0.75x)")
    if pulse and am and am.deliveries_per_s:
        print(f"Pulse / Alertmanager deliveries/s:  {pulse.deliveries_per_s / am.deliveries_per_s:.2f}x")
        if am.ingest_per_s and pulse.ingest_per_s:
            print(f"Pulse / Alertmanager alerts in/s:   {pulse.ingest_per_s / am.ingest_per_s:.2f}x")
    if pulse:
        print(f"Pulse ingest {show(pulse.ingest_per_s)} alerts/s (goal >= 300); worker {show(pulse.worker_cpu_ms_per_delivery, '.2f')} ms "
              f"CPU/delivery (goal <= 3); web {show(pulse.web_cpu_ms_per_alert, '.2f')} ms CPU/alert (goal <= 3)")
    if "pulse-no-metrics" in rows and pulse:
        other = rows["pulse-no-metrics"]
        print(f"worker metrics on / off: {pulse.deliveries_per_s:.0f} / {other.deliveries_per_s:.0f} deliveries/s, "
              f"{show(pulse.worker_cpu_ms_per_delivery, '.2f')} / {show(other.worker_cpu_ms_per_delivery, '.2f')} ms CPU/delivery")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=2000, help="N")
    parser.add_argument("--receivers", type=int, default=3, help="M")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8, help="worker threads (the Procfile's default)")
    parser.add_argument("--only", choices=("bare", "pulse", "alertmanager"), action="append")
    parser.add_argument("--without-metrics-too", action="store_true", help="also run Pulse with the worker metrics off")
    parser.add_argument("--web-workers", type=int, default=1, help="gunicorn workers of Pulse's web process (WEB_CONCURRENCY)")
    parser.add_argument("--quick", action="store_true", help="20 alerts x 2 receivers, one run of each")
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON line at the end")
    args = parser.parse_args(argv)
    if args.quick:
        args.alerts, args.receivers, args.runs = 20, 2, 1
    (ROOT / ".tmp").mkdir(exist_ok=True)
    systems = args.only or ["bare", "pulse", "alertmanager"]
    runs: dict[str, list[Run]] = {}
    for number in range(args.runs):
        for system in systems:
            print(f"run {number + 1}/{args.runs}: {system} ...", file=sys.stderr, flush=True)
            if system == "bare":
                result = run_bare(args.alerts, args.receivers, args.concurrency)
            elif system == "pulse":
                result = run_pulse(args.alerts, args.receivers, args.concurrency, {}, web_workers=args.web_workers)
            else:
                result = run_alertmanager(args.alerts, args.receivers)
            runs.setdefault(system, []).append(result)
            if system == "pulse" and args.without_metrics_too:
                runs.setdefault("pulse-no-metrics", []).append(
                    run_pulse(args.alerts, args.receivers, args.concurrency, {"WORKER_METRICS_PORT": "0"}, "Pulse, worker metrics off")
                )
    rows = {system: medians(results) for system, results in runs.items()}
    print(f"{args.alerts} alerts x {args.receivers} webhook receivers, posted from 8 threads, one alert per request")
    report(rows, args.runs)
    if args.json:
        print(json.dumps({name: {**asdict(row), "void": row.void} for name, row in rows.items()}))
    return 1 if any(row.void for name, row in rows.items() if not row.notes or "not installed" not in " ".join(row.notes)) else 0


if __name__ == "__main__":
    sys.exit(main())
