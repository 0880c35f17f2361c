"""Fairness: a flooding tenant must not delay another tenant's deliveries (DESIGN §5a).

Tenant A posts `--flood` alerts (3,000) as fast as the API (and its rate limit) takes them,
from 8 threads; meanwhile tenant B posts one alert a second. Both deliver to a webhook sink,
at the same severity, through a Pulse stack of its own (gunicorn, one worker, beat;
PostgreSQL and a Redis of its own). Prints B's commit-to-receipt p50/p99 (goal: p99 <= 1 s)
beside A's, whose backlog waits in the database.

    .venv/bin/python bench/fairness.py
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Api, Sink, Stack, commit_to_receipt_ms, median, percentile, post_alerts  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flood", type=int, default=3000, help="alerts tenant A posts")
    parser.add_argument("--pg-admin-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)

    sink = Sink()
    stack = Stack(args.pg_admin_url, name="fairness").create()
    try:
        web = stack.web()
        stack.worker("worker", 8)
        stack.beat()
        noisy, quiet = Api(web, stack.token("tenant-a")), Api(web, stack.token("tenant-b"))
        noisy.webhook(f"{sink.url}/a")
        quiet.webhook(f"{sink.url}/b")
        flooding = threading.Event()
        flooding.set()
        quiet_posted = 0

        def trickle() -> None:
            nonlocal quiet_posted
            while flooding.is_set():
                quiet.post("/alerts", {"device_id": f"b-{quiet_posted}", "alert_type": "leak", "severity": 2, "message": "B"})
                quiet_posted += 1
                time.sleep(1.0)

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        started, posted = post_alerts(
            noisy, args.flood, lambda n: {"device_id": f"a-{n}", "alert_type": "flood", "severity": 2, "message": "A"}, threads=8
        )
        # Keep B posting while A's backlog drains.
        deadline = time.time() + 600
        while time.time() < deadline and sum(1 for *_, path in sink.arrivals.values() if path == "/a") < args.flood:
            time.sleep(0.2)
        drained = time.time()
        flooding.clear()
        trickler.join()
        time.sleep(2)
        a = [arrival for arrival in sink.arrivals.values() if arrival[2] == "/a"]
        b = [arrival for arrival in sink.arrivals.values() if arrival[2] == "/b"]
    finally:
        stack.stop()
        stack.drop()
        sink.close()

    a_ms, b_ms = commit_to_receipt_ms(a), commit_to_receipt_ms(b)
    print(f"tenant A: {args.flood} alerts posted in {posted - started:.1f} s ({args.flood / (posted - started):.0f}/s), "
          f"{len(a)} delivered, backlog drained after {drained - started:.1f} s")
    print(f"tenant A commit-to-receipt  p50 {median(a_ms):7.0f} ms   p99 {percentile(a_ms, 0.99):7.0f} ms")
    print(f"tenant B: {quiet_posted} alerts at 1/s during the flood, {len(b)} delivered")
    print(f"tenant B commit-to-receipt  p50 {median(b_ms):7.0f} ms   p99 {percentile(b_ms, 0.99):7.0f} ms")
    print("goal (B p99 <= 1 s): " + ("met" if percentile(b_ms, 0.99) <= 1000 else "NOT met"))
    return 0 if len(b) == quiet_posted and len(a) == args.flood else 1


if __name__ == "__main__":
    sys.exit(main())
