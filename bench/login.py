"""Login under load: /healthz latency while 16 clients hammer POST /auth/token (goal: p99 <= 250 ms).

Starts a Pulse web process (gunicorn's gevent worker, as the Procfile runs it) on a PostgreSQL
database and a Redis of its own, makes one user, then for `--seconds` has `--clients` threads
post logins (half of them with a wrong password) as fast as they are answered, while one more
thread asks /healthz every 10 ms. Prints /healthz p50/p99 before and during the hammering, and
how the logins were answered (200, 401, 429). With the default RATE_LIMIT_AUTH (10/minute per
address and per email) almost every login is a 429; `--rate-limit-auth off` makes every one
of them check a password, which is the load the hashing pool is there for.

    .venv/bin/python bench/login.py
    .venv/bin/python bench/login.py --rate-limit-auth off
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, Stack, median, percentile  # noqa: E402

EMAIL = "bench@login-bench.test"
PASSWORD = "bench-password-123"


def probe_health(url: str, stop: threading.Event, into: list[float]) -> None:
    session = requests.Session()
    while not stop.is_set():
        started = time.perf_counter()
        session.get(url + "/healthz", timeout=10).raise_for_status()
        into.append((time.perf_counter() - started) * 1000)
        time.sleep(0.01)


def hammer(url: str, stop: threading.Event, answers: Counter, lock: threading.Lock, number: int) -> None:
    session = requests.Session()
    count = 0
    while not stop.is_set():
        password = PASSWORD if (count + number) % 2 == 0 else "wrong-password"
        status = session.post(url + "/api/v2/auth/token", json={"email": EMAIL, "password": password}, timeout=30).status_code
        with lock:
            answers[status] += 1
        count += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rate-limit-auth", default="10/minute", help="RATE_LIMIT_AUTH of the web process")
    parser.add_argument("--password-threads", default="2", help="PULSE_PASSWORD_THREADS of the web process")
    parser.add_argument("--pg-admin-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)

    env = {"RATE_LIMIT_AUTH": args.rate_limit_auth, "PULSE_PASSWORD_THREADS": args.password_threads}
    stack = Stack(args.pg_admin_url, env=env, name="login").create()
    try:
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", "create-user", "--tenant", "login-bench", "--email", EMAIL,
             "--role", "customer_admin", "--password", PASSWORD],
            cwd=ROOT, env=stack.env, capture_output=True, text=True, check=True,
        )
        url = stack.web()

        idle: list[float] = []
        stop = threading.Event()
        prober = threading.Thread(target=probe_health, args=(url, stop, idle))
        prober.start()
        time.sleep(3)
        stop.set()
        prober.join()

        loaded: list[float] = []
        answers: Counter = Counter()
        lock = threading.Lock()
        stop = threading.Event()
        threads = [threading.Thread(target=hammer, args=(url, stop, answers, lock, n)) for n in range(args.clients)]
        threads.append(threading.Thread(target=probe_health, args=(url, stop, loaded)))
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        time.sleep(args.seconds)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    finally:
        stack.stop()
        stack.drop()

    total = sum(answers.values())
    print(f"RATE_LIMIT_AUTH={args.rate_limit_auth}  PULSE_PASSWORD_THREADS={args.password_threads}  clients={args.clients}  seconds={args.seconds:g}")
    print(f"/healthz idle:      p50 {median(idle):7.1f} ms   p99 {percentile(idle, 0.99):7.1f} ms   ({len(idle)} probes)")
    print(f"/healthz hammered:  p50 {median(loaded):7.1f} ms   p99 {percentile(loaded, 0.99):7.1f} ms   ({len(loaded)} probes)")
    print(
        f"logins: {total} in {elapsed:.1f} s ({total / elapsed:.0f}/s): 200 {answers[200]}, 401 {answers[401]}, "
        f"429 {answers[429]}, other {total - answers[200] - answers[401] - answers[429]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
