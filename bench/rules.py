"""Rules: routing with 10,000 rules in one tenant (goal: <= 5 ms of matching per alert).

Creates one tenant with `--rules` (10,000) routing rules over `--channels` (50) webhook
channels: each rule names one of `--types` (1,000) alert types, a third of them also a
minimum severity, a site list or device prefixes, in mixed priorities, plus a handful of
catch-all rules. The rules go into the database in bulk (through the API they would take
minutes to create); the API's cache of the tenant's routing sees them like any other write.

Then prints
- matching time per alert: `app.alerts.route_event`, the function dispatch uses, over
  `--samples` alerts of random types, in-process against the same database (the first call,
  which loads the tenant's routing, is reported apart);
- the API's latency: `POST /alerts` one at a time (`--alerts`), first with 10,000 rules, then
  for a tenant with 3 rules, side by side.

    .venv/bin/python bench/rules.py
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Api, Sink, Stack, median, percentile  # noqa: E402


def insert_rules(stack: Stack, tenant: str, channel_ids: list[int], rules: int, types: int, rng: random.Random) -> None:
    engine = stack.engine()
    now = datetime.now(timezone.utc)
    rows = []
    for number in range(rules):
        row = {
            "tenant_id": tenant,
            "channel_id": rng.choice(channel_ids),
            "min_severity": None,
            "alert_type": f"type-{number % types}",
            "device_tag_key": None,
            "device_tag_val": None,
            "site_ids": None,
            "device_prefixes": None,
            "deliver_on": json.dumps(["OPEN", "ACKNOWLEDGED", "CLOSED"]),
            "throttle_minutes": 0,
            "priority": rng.randint(1, 500),
            "is_enabled": number % 50 != 0,
            "created_at": now,
        }
        kind = number % 3
        if kind == 0:
            row["min_severity"] = rng.randint(1, 5)
        elif kind == 1:
            row["site_ids"] = json.dumps([f"site-{rng.randint(0, 20)}", f"site-{rng.randint(0, 20)}"])
        else:
            row["device_prefixes"] = json.dumps([f"dev-{rng.randint(0, 9)}"])
        rows.append(row)
    for catch_all in range(5):
        rows.append({**rows[0], "alert_type": None, "min_severity": 5, "site_ids": None, "device_prefixes": None,
                     "channel_id": channel_ids[catch_all], "priority": 1000 + catch_all, "is_enabled": True})
    import sqlalchemy

    columns = list(rows[0])
    statement = sqlalchemy.text(
        f"INSERT INTO notification_routing_rules ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"
    )
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("SELECT set_config('app.tenant_id', :t, true)"), {"t": tenant})
        connection.execute(statement, rows)
    engine.dispose()


def alert_body(number: int, rng: random.Random, types: int) -> dict:
    return {
        "device_id": f"dev-{rng.randint(0, 9)}-{number}",
        "site_id": f"site-{rng.randint(0, 20)}",
        "alert_type": f"type-{rng.randrange(types)}",
        "severity": rng.randint(1, 5),
        "message": "bench",
    }


def matching_times(stack: Stack, tenant: str, samples: int, types: int, rng: random.Random) -> tuple[float, list[float], float]:
    """(first call ms, per-alert ms of the others, mean rules decided) of route_event, in-process."""
    os.environ.update({key: value for key, value in stack.env.items() if key in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY")})
    from app.alerts import route_event
    from app.config import Settings
    from app.db import Database
    from app.models import utcnow
    from app.routing import AlertFacts

    db = Database(Settings.from_env().database_url)
    times, decided = [], []
    first = 0.0
    with db.session(tenant) as session:
        for number in range(samples + 1):
            body = alert_body(number, rng, types)
            facts = AlertFacts(body["severity"], body["alert_type"], body["device_id"], body["site_id"], {})
            started = time.perf_counter()
            decisions = route_event(session, tenant, facts, "OPEN", utcnow())
            elapsed = (time.perf_counter() - started) * 1000
            if number == 0:
                first = elapsed
            else:
                times.append(elapsed)
                decided.append(len(decisions))
    db.dispose()
    return first, times, sum(decided) / max(len(decided), 1)


def api_latencies(api: Api, count: int, rng: random.Random, types: int) -> list[float]:
    latencies = []
    for number in range(count):
        started = time.perf_counter()
        api.post("/alerts", alert_body(number, rng, types))
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--types", type=int, default=1000, help="distinct alert types the rules name")
    parser.add_argument("--samples", type=int, default=1000, help="alerts routed in-process")
    parser.add_argument("--alerts", type=int, default=200, help="alerts posted through the API, per tenant")
    parser.add_argument("--pg-admin-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    rng = random.Random(7)

    sink = Sink()
    stack = Stack(args.pg_admin_url, name="rules").create()
    try:
        web = stack.web()
        stack.worker()
        tenant = "bench-rules"
        big = Api(web, stack.token(tenant))
        channel_ids = [
            big.post("/channels", {"name": f"sink {n}", "channel_type": "webhook", "config": {"url": f"{sink.url}/c{n}"}})["channel_id"]
            for n in range(args.channels)
        ]
        loaded = time.perf_counter()
        insert_rules(stack, tenant, channel_ids, args.rules, args.types, rng)
        print(f"{args.rules + 5} rules over {args.channels} channels inserted in {time.perf_counter() - loaded:.1f} s", file=sys.stderr)

        first, times, decided = matching_times(stack, tenant, args.samples, args.types, rng)
        api_latencies(big, 20, rng, args.types)  # the web process loads the routing once
        big_latency = api_latencies(big, args.alerts, rng, args.types)

        small = Api(web, stack.token())
        for n in range(3):
            small.webhook(f"{sink.url}/small-{n}")
        api_latencies(small, 20, rng, args.types)
        small_latency = api_latencies(small, args.alerts, rng, args.types)
    finally:
        stack.stop()
        stack.drop()
        sink.close()

    print(f"routing with {args.rules + 5} rules in one tenant ({args.types} alert types, {args.channels} channels)")
    print(f"matching per alert (route_event, in-process, {len(times)} alerts): p50 {median(times):.2f} ms   p99 {percentile(times, 0.99):.2f} ms"
          f"   (rules decided per alert: {decided:.0f}; first call, loading the tenant's routing: {first:.0f} ms)")
    print(f"POST /alerts latency, {args.alerts} one at a time:   {args.rules + 5} rules p50 {median(big_latency):.1f} ms  p99 {percentile(big_latency, 0.99):.1f} ms"
          f"   |   3 rules p50 {median(small_latency):.1f} ms  p99 {percentile(small_latency, 0.99):.1f} ms")
    print("goal (matching <= 5 ms per alert): " + ("met" if times and percentile(times, 0.99) <= 5 else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
