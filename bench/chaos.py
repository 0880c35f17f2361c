"""Chaos: N deliveries through two workers while one of them is SIGKILLed again and again.

Starts a Pulse stack of its own (PostgreSQL database, Redis database, gunicorn, two Celery
workers, beat), an HTTP sink, and M webhook channels; posts alerts from 8 threads; meanwhile
SIGKILLs a worker (alternately) K times, each time counting the attempts in flight
(`SENDING` jobs) just before the kill, and starts it again. Then waits until every job is
settled and prints: jobs delivered, failed, unsettled; deliveries received, duplicates; and
whether the run holds DESIGN §5a (every job DELIVERED, none lost, duplicates at most the
attempts in flight at the kills).

    .venv/bin/python bench/chaos.py --deliveries 10000 --kills 20

`make test` runs it at a small scale (tests/test_chaos.py). The last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Api, Sink, Stack  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--kill-every", type=float, default=2.0, help="seconds between kills")
    parser.add_argument("--concurrency", type=int, default=8, help="threads per worker")
    parser.add_argument("--pg-admin-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default=None, help="default: a redis-server of the run's own")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for every job to settle")
    args = parser.parse_args(argv)

    alerts = max(1, args.deliveries // args.channels)
    expected = alerts * args.channels
    sink = Sink(delay_for=lambda path: 0.005)
    stack = Stack(
        args.pg_admin_url,
        args.redis_url,
        {
            # Short attempts, hence short leases: a killed worker's jobs go round again soon.
            "DELIVERY_TIMEOUT_SECONDS": "2",
            "SWEEP_INTERVAL_SECONDS": "1",
            "DELIVERY_MAX_ATTEMPTS": "10",
            "DELIVERY_BACKOFF_BASE_SECONDS": "1",
            "CIRCUIT_FAILURE_THRESHOLD": "1000",
        },
        name="chaos",
    ).create()
    in_flight_at_kills: list[int] = []
    try:
        web = stack.web()
        workers = ["worker-a", "worker-b"]
        for name in workers:
            stack.worker(name, args.concurrency)
        stack.beat()
        api = Api(web, stack.token())
        for number in range(args.channels):
            api.webhook(f"{sink.url}/hook-{number}")

        engine = stack.engine()
        posting_done = threading.Event()

        def post_all() -> None:
            def post(number: int) -> None:
                api.post("/alerts", {"device_id": f"dev-{number}", "alert_type": "chaos", "severity": 2, "message": f"alert {number}"})

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(post, range(alerts)))
            posting_done.set()

        started = time.time()
        poster = threading.Thread(target=post_all, daemon=True)
        poster.start()
        for kill in range(args.kills):
            time.sleep(args.kill_every)
            with engine.connect() as connection:
                in_flight = connection.execute(text("SELECT count(*) FROM notification_jobs WHERE status = 'SENDING'")).scalar()
            name = workers[kill % 2]
            stack.kill(name)
            in_flight_at_kills.append(in_flight)
            stack.worker(name, args.concurrency)
        poster.join()

        deadline = time.time() + args.timeout
        while time.time() < deadline:
            with engine.connect() as connection:
                unsettled = connection.execute(
                    text("SELECT count(*) FROM notification_jobs WHERE status NOT IN ('DELIVERED', 'FAILED')")
                ).scalar()
                total = connection.execute(text("SELECT count(*) FROM notification_jobs")).scalar()
            if total == expected and unsettled == 0:
                break
            time.sleep(1)
        elapsed = time.time() - started
        with engine.connect() as connection:
            counts = dict(connection.execute(text("SELECT status, count(*) FROM notification_jobs GROUP BY status")).all())
        engine.dispose()
    finally:
        stack.stop()
        stack.drop()
        sink.close()

    delivered = counts.get("DELIVERED", 0)
    received = sink.count()
    bound = sum(in_flight_at_kills)
    summary = {
        "deliveries_expected": expected,
        "jobs": counts,
        "received_unique": received,
        "received_total": sink.received,
        "duplicates": sink.duplicates,
        "kills": len(in_flight_at_kills),
        "in_flight_at_kills": in_flight_at_kills,
        "duplicate_bound": bound,
        "seconds": round(elapsed, 1),
    }
    summary["holds"] = delivered == expected and received == expected and sink.duplicates <= bound
    print(f"deliveries expected   {expected}")
    print(f"jobs by status        {counts}")
    print(f"received (unique)     {received}   lost: {expected - received}")
    print(f"duplicates            {sink.duplicates}   (attempts in flight at the {len(in_flight_at_kills)} kills: {bound})")
    print(f"run                   {elapsed:.1f} s")
    print("guarantee             " + ("HOLDS" if summary["holds"] else "BROKEN"))
    print(json.dumps(summary))
    return 0 if summary["holds"] else 1


if __name__ == "__main__":
    sys.exit(main())
