"""Priority: a critical alert must not wait behind a backlog of minor deliveries (DESIGN §5).

Builds a backlog of `--backlog` (10,000) minor deliveries (severity 1: `--backlog / 5` alerts x
5 channels) with no worker running, then starts the worker (8 threads) and, while it drains
the backlog, posts `--critical` (20) critical alerts, two a second, to a channel of their own.
Prints the critical deliveries' commit-to-receipt p50/p99 (goal: p99 <= 1 s) and how much of
the backlog was still waiting when the last critical one arrived.

    .venv/bin/python bench/priority.py
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
    parser.add_argument("--backlog", type=int, default=10_000, help="minor deliveries queued first")
    parser.add_argument("--critical", type=int, default=20, help="critical alerts posted while they drain")
    parser.add_argument("--pg-admin-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)

    sink = Sink()
    stack = Stack(args.pg_admin_url, name="priority").create()
    minor_channels = 5
    try:
        web = stack.web()
        api = Api(web, stack.token())
        for number in range(minor_channels):
            api.webhook(f"{sink.url}/minor-{number}", alert_type="drift")
        api.webhook(f"{sink.url}/critical", alert_type="fire")
        minors = args.backlog // minor_channels
        post_alerts(api, minors, lambda n: {"device_id": f"sensor-{n}", "alert_type": "drift", "severity": 1, "message": "drift"}, threads=8)
        print(f"backlog: {minors * minor_channels} minor deliveries waiting", file=sys.stderr)
        stack.worker("worker", 8)
        time.sleep(1.0)  # the worker is busy with the backlog now
        post_alerts(api, args.critical, lambda n: {"device_id": f"boiler-{n}", "alert_type": "fire", "severity": 5, "message": "fire"}, threads=2, rate=2.0)
        deadline = time.time() + 60
        while time.time() < deadline and sum(1 for *_, path in sink.arrivals.values() if path == "/critical") < args.critical:
            time.sleep(0.05)
        minor_done = sum(1 for *_, path in sink.arrivals.values() if path != "/critical")
        critical = [arrival for arrival in sink.arrivals.values() if arrival[2] == "/critical"]
    finally:
        stack.stop()
        stack.drop()
        sink.close()

    latencies = commit_to_receipt_ms(critical)
    print(f"critical deliveries      {len(critical)} of {args.critical}")
    print(f"critical commit-to-receipt p50 {median(latencies):.0f} ms   p99 {percentile(latencies, 0.99):.0f} ms   max {max(latencies, default=0):.0f} ms")
    print(f"minor backlog            {minor_done} of {minors * minor_channels} delivered when the last critical one arrived")
    print("goal (critical p99 <= 1 s): " + ("met" if latencies and percentile(latencies, 0.99) <= 1000 else "NOT met"))
    return 0 if len(critical) == args.critical else 1


if __name__ == "__main__":
    sys.exit(main())
