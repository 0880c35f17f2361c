"""A worker lowers its CPU priority below the web's, and only its own (app.cpu_priority).

Workers and small programs run here as real processes in sessions of their own, as a Procfile
runner starts them; the priorities are read back from /proc.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, WorkerProcess

needs_autogroup = pytest.mark.skipif(
    not Path("/proc/self/autogroup").exists(), reason="the kernel schedules without autogroups (CONFIG_SCHED_AUTOGROUP off)"
)


def thread_nices(pid: int) -> set[int]:
    """The nice value of every thread of the process."""
    nices = set()
    for thread in os.listdir(f"/proc/{pid}/task"):
        fields = Path(f"/proc/{pid}/task/{thread}/stat").read_text().rsplit(")", 1)[1].split()
        nices.add(int(fields[16]))
    return nices


def session_nice(pid: int) -> int:
    """The nice value of the process's session (its autogroup): '/autogroup-12 nice 5'."""
    return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])


def base_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


@needs_autogroup
def test_a_worker_runs_every_thread_and_its_session_at_a_lower_priority():
    worker = WorkerProcess("nice", concurrency=2)
    worker.start()
    try:
        assert thread_nices(worker.process.pid) == {min(19, base_nice() + 5)}
        assert session_nice(worker.process.pid) == 5
        assert "CPU priority lowered by 5 (process, session)" in worker.log()
    finally:
        worker.stop()


@needs_autogroup
def test_worker_nice_0_leaves_the_priority_alone():
    worker = WorkerProcess("nice-0", env={"WORKER_NICE": "0"}, concurrency=2)
    worker.start()
    try:
        assert thread_nices(worker.process.pid) == {base_nice()}
        assert session_nice(worker.process.pid) == 0
        assert "CPU priority lowered" not in worker.log()
    finally:
        worker.stop()


# Lowers its priority by 3, with or without another program in its session, and prints what
# it lowered and its session's nice value.
PROGRAM = """
import subprocess, sys
from app.cpu_priority import lower_priority
companion = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) if sys.argv[1] == "shared" else None
try:
    print(",".join(lower_priority(3)), open("/proc/self/autogroup").read().split()[-1])
finally:
    if companion:
        companion.kill()
"""


def lowered_in_a_new_session(how: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, how], cwd=ROOT, capture_output=True, text=True, timeout=60, start_new_session=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@needs_autogroup
def test_a_session_shared_with_another_program_keeps_its_priority():
    assert lowered_in_a_new_session("alone") == "process,session 3"
    assert lowered_in_a_new_session("shared") == "process 0"
