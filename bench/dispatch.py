"""Dispatch: N alerts x M webhook channels through Pulse; throughput and commit-to-receipt latency.

Starts a Pulse stack of its own (gunicorn and one worker as the Procfile runs them, on
PostgreSQL and a Redis of its own) unless `--api` names a running one (its tenant is made with
`flask create-user`, so run it then with that stack's DATABASE_URL and SECRET_KEY). Posts N
alerts from `--threads` clients, as fast as the API takes them or on a steady schedule
(`--rate` alerts/s), each matched by M channels pointing at a sink on loopback, and waits for
all N x M deliveries. Prints deliveries/s and the latency from the alert's time in its
transaction (`triggered_at`) to receipt: p50, p99, max.

    .venv/bin/python bench/dispatch.py --alerts 2000 --channels 3            # capacity
    .venv/bin/python bench/dispatch.py --alerts 2000 --channels 3 --rate 50  # latency below saturation
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, Api, Sink, Stack, commit_to_receipt_ms, median, percentile, post_alerts  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", help="a running Pulse (default: start one)")
    parser.add_argument("--alerts", type=int, default=2000, help="N")
    parser.add_argument("--channels", type=int, default=3, help="M")
    parser.add_argument("--threads", type=int, default=8, help="concurrent API clients")
    parser.add_argument("--rate", type=float, default=0, help="alerts per second to post at (0: as fast as the API takes them)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--pg-admin-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)

    sink = Sink()
    stack = None
    try:
        if args.api:
            tenant = "bench-" + uuid.uuid4().hex[:8]
            token = subprocess.run(
                [sys.executable, "-m", "flask", "--app", "app", "create-user", "--tenant", tenant, "--email", f"bench@{tenant}.test",
                 "--role", "customer_admin", "--password", uuid.uuid4().hex],
                cwd=ROOT, capture_output=True, text=True, check=True,
            ).stdout.strip().splitlines()[-1]
            api = Api(args.api, token)
        else:
            stack = Stack(args.pg_admin_url, name="dispatch").create()
            web = stack.web()
            stack.worker("worker", 8)
            api = Api(web, stack.token())
        for number in range(args.channels):
            api.webhook(f"{sink.url}/c{number}")
        expected = args.alerts * args.channels
        started, posted = post_alerts(
            api,
            args.alerts,
            lambda n: {"device_id": f"bench-{n}", "alert_type": "load", "severity": 1 + n % 5, "message": f"bench alert {n}"},
            threads=args.threads,
            rate=args.rate,
        )
        deadline = started + args.timeout
        while sink.count() < expected and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        if stack is not None:
            stack.stop()
            stack.drop()
        sink.close()

    arrivals = list(sink.arrivals.values())
    latencies = commit_to_receipt_ms(arrivals)
    last = max((at for at, *_ in arrivals), default=time.time())
    pace = f"paced at {args.rate:g}/s" if args.rate else f"{args.threads} client threads, unpaced"
    print(f"alerts posted:        {args.alerts} in {posted - started:.2f} s ({args.alerts / (posted - started):.0f} alerts/s, {pace})")
    print(f"deliveries received:  {len(arrivals)} of {expected} (duplicates: {sink.duplicates})")
    print(f"throughput:           {len(arrivals) / (last - started):.0f} deliveries/s (first post to last receipt: {last - started:.2f} s)")
    if latencies:
        print(f"latency (ms):         p50 {median(latencies):.0f}   p99 {percentile(latencies, 0.99):.0f}   max {max(latencies):.0f}")
    return 0 if len(arrivals) == expected else 1


if __name__ == "__main__":
    sys.exit(main())
