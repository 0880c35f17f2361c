"""One hanging receiver must not delay anybody else (DESIGN §5a, bulkheads and circuit breakers).

Two webhook channels, each with its own rule: one receiver answers after `--hang` seconds
(10, as long as the attempt timeout), the other at once. Alerts are posted at a steady
`--rate` (4/s) for `--seconds` (30), each delivered to both channels, by a Pulse stack of its
own (gunicorn, one worker of 8 threads, beat; PostgreSQL and a Redis of its own). Prints the
fast channel's commit-to-receipt p50/p99 (goal: p99 <= 500 ms) and what the slow channel did.

    .venv/bin/python bench/hanging.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Api, Sink, Stack, commit_to_receipt_ms, median, percentile, post_alerts  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=4.0, help="alerts per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--hang", type=float, default=10.0, help="how long the slow receiver takes to answer")
    parser.add_argument("--pg-admin-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)

    sink = Sink(delay_for=lambda path: args.hang if path.startswith("/slow") else 0.0)
    stack = Stack(args.pg_admin_url, name="hanging").create()
    count = int(args.rate * args.seconds)
    try:
        web = stack.web()
        stack.worker("worker", 8)
        stack.beat()
        api = Api(web, stack.token())
        api.webhook(f"{sink.url}/slow")
        api.webhook(f"{sink.url}/fast")
        started, posted = post_alerts(
            api, count, lambda n: {"device_id": f"dev-{n}", "alert_type": "pressure", "severity": 3, "message": f"alert {n}"}, threads=4, rate=args.rate
        )
        deadline = time.time() + 30
        while time.time() < deadline and sum(1 for *_, path in sink.arrivals.values() if path == "/fast") < count:
            time.sleep(0.1)
        slow_requests = sum(1 for *_, path in sink.arrivals.values() if path == "/slow")
        fast = [arrival for arrival in sink.arrivals.values() if arrival[2] == "/fast"]
        latencies = commit_to_receipt_ms(fast)
    finally:
        stack.stop()
        stack.drop()
        sink.close()

    print(f"alerts posted         {count} at {args.rate:g}/s over {posted - started:.1f} s; slow receiver answers after {args.hang:g} s")
    print(f"fast channel          {len(fast)} of {count} delivered")
    print(f"fast commit-to-receipt p50 {median(latencies):.0f} ms   p99 {percentile(latencies, 0.99):.0f} ms   max {max(latencies, default=0):.0f} ms")
    print(f"slow channel          {slow_requests} distinct deliveries reached it (its circuit opens; the rest wait)")
    goal = len(fast) == count and percentile(latencies, 0.99) <= 500
    print("goal (fast p99 <= 500 ms): " + ("met" if goal else "NOT met"))
    return 0 if len(fast) == count else 1


if __name__ == "__main__":
    sys.exit(main())
