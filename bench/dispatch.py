"""Dispatch benchmark: N alerts x M webhook channels through a running Pulse stack.

Starts a fast HTTP sink on loopback, creates a tenant (through `flask create-user`, so run it
with the stack's DATABASE_URL and SECRET_KEY), M webhook channels pointing at the sink and a
rule for each, posts N alerts through the API from a few threads, and waits until all N x M
deliveries arrived. Prints deliveries per second and the latency from the alert's creation
in its transaction (`triggered_at`) to receipt at the sink: p50, p99, max.

The stack must allow loopback destinations (ALLOW_PRIVATE_DESTINATIONS=1). See README,
"Benchmarks", for the command lines.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


class Sink:
    """Records the arrival time of every delivery, keyed by job id."""

    def __init__(self):
        self.arrivals: dict[str, tuple[float, dict]] = {}
        self.duplicates = 0
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.time()
                with sink.lock:
                    key = self.headers.get("webhook-id")
                    if key in sink.arrivals:
                        sink.duplicates += 1
                    else:
                        sink.arrivals[key] = (now, json.loads(body))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 1024
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


def make_token() -> str:
    tenant = "bench-" + uuid.uuid4().hex[:8]
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "create-user", "--tenant", tenant, "--email", f"bench@{tenant}.test", "--role", "customer_admin", "--password", uuid.uuid4().hex],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", default=os.environ.get("PULSE_API", "http://127.0.0.1:8000"))
    parser.add_argument("--alerts", type=int, default=2000, help="N")
    parser.add_argument("--channels", type=int, default=3, help="M")
    parser.add_argument("--threads", type=int, default=8, help="concurrent API clients")
    parser.add_argument("--rate", type=float, default=0, help="alerts per second to post at (0: as fast as the API takes them)")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    sink = Sink()
    headers = {"Authorization": f"Bearer {make_token()}"}
    session = requests.Session()
    for number in range(args.channels):
        channel = session.post(f"{args.api}/api/v2/channels", headers=headers, json={"name": f"sink {number}", "channel_type": "webhook", "config": {"url": f"{sink.url}/c{number}"}})
        channel.raise_for_status()
        session.post(f"{args.api}/api/v2/routing-rules", headers=headers, json={"channel_id": channel.json()["channel_id"]}).raise_for_status()

    local = threading.local()

    def post(number: int) -> None:
        if args.rate:
            # A steady schedule: alert `number` is not posted before its slot.
            time.sleep(max(0.0, started + number / args.rate - time.time()))
        if not hasattr(local, "session"):
            local.session = requests.Session()
        response = local.session.post(
            f"{args.api}/api/v2/alerts",
            headers=headers,
            json={"device_id": f"bench-{number}", "alert_type": "load", "severity": 1 + number % 5, "message": f"bench alert {number}"},
        )
        response.raise_for_status()

    expected = args.alerts * args.channels
    started = time.time()
    with ThreadPoolExecutor(args.threads) as pool:
        list(pool.map(post, range(args.alerts)))
    posted = time.time()
    deadline = started + args.timeout
    while len(sink.arrivals) < expected and time.time() < deadline:
        time.sleep(0.05)
    finished = time.time()

    arrivals = list(sink.arrivals.values())
    latencies = [(at - datetime.fromisoformat(payload["triggered_at"]).timestamp()) * 1000 for at, payload in arrivals]
    last = max(at for at, _ in arrivals) if arrivals else finished
    pace = f"paced at {args.rate:g}/s" if args.rate else f"{args.threads} client threads, unpaced"
    print(f"alerts posted:        {args.alerts} in {posted - started:.2f} s ({args.alerts / (posted - started):.0f} alerts/s, {pace})")
    print(f"deliveries received:  {len(arrivals)} of {expected} (duplicates: {sink.duplicates})")
    print(f"throughput:           {len(arrivals) / (last - started):.0f} deliveries/s (first post to last receipt: {last - started:.2f} s)")
    if latencies:
        print(f"latency (ms):         p50 {statistics.median(latencies):.0f}   p99 {percentile(latencies, 0.99):.0f}   max {max(latencies):.0f}")
    return 0 if len(arrivals) == expected else 1


if __name__ == "__main__":
    sys.exit(main())
