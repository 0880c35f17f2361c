"""The benchmarks still run end to end (on tiny numbers): a benchmark nobody can run has rotted.

They print speed; nothing here asserts one. What is checked is that each system accounted
for every delivery.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import ROOT


def test_compare_runs_every_system_end_to_end(database_url):
    completed = subprocess.run(
        [sys.executable, "bench/compare.py", "--quick", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    rows = json.loads(completed.stdout.strip().splitlines()[-1])
    assert set(rows) == {"bare", "pulse", "alertmanager"}
    for name, row in rows.items():
        assert not row["void"] and row["received"] == row["expected"] == 40, (name, row)
    assert rows["pulse"]["worker_cpu_ms_per_delivery"] > 0 and rows["pulse"]["web_cpu_ms_per_alert"] > 0
    assert "Pulse / bare Celery deliveries/s" in completed.stdout
