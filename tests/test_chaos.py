"""Two workers, one SIGKILLed again and again: nothing lost, duplicates bounded (DESIGN §5a).

The scenario of `bench/chaos.py` at a small scale, run as the benchmark itself so that the
benchmark cannot rot: every job ends DELIVERED, every delivery reaches the receiver, and the
receiver sees a repeat only for attempts that were in flight when a worker died.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import PG_ADMIN_URL
from tests.support import ROOT


def test_deliveries_survive_a_worker_killed_mid_run(database_url):
    completed = subprocess.run(
        [sys.executable, "bench/chaos.py", "--deliveries", "300", "--kills", "3", "--kill-every", "1.5",
         "--pg-admin-url", PG_ADMIN_URL, "--timeout", "120"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert summary["jobs"] == {"DELIVERED": 300}
    assert summary["received_unique"] == 300
    assert summary["kills"] == 3
    assert summary["duplicates"] <= summary["duplicate_bound"]
