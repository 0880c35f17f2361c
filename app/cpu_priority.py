"""The worker's CPU priority: when the machine is saturated, the API takes alerts first.

A burst loads every part of Pulse at once: the web takes the producers' alerts, the workers
drain the backlog they make, PostgreSQL serves both. Linux shares the CPU fairly between
sessions (its "autogroup" scheduling), so a worker draining a backlog took as much CPU as the
web: under `bench/compare.py` the web got half a core and took about 200 alerts/s, while it
takes over 450/s alone.

Intake goes first because the two are not equal. An alert Pulse has accepted is safe: the
database holds it and its jobs, and they are delivered in their order whatever the wait. An
alert a producer could not post in time may be lost at its source. So the worker lowers its
own priority (`WORKER_NICE`, 5 by default; 0 leaves it alone) and delivers with what CPU the
intake leaves. A priority only decides who waits when both want the CPU at once: on a machine
with CPU to spare, deliveries go out as fast as before (`bench/dispatch.py`).

The nice value is per thread on Linux, inherited by the threads a thread starts: it is set
before the worker starts its pool, and it orders the worker behind the processes of its own
session (supervisord starts its programs in its own session). Between sessions only each
session's nice value counts (`/proc/self/autogroup`): it is set too when the worker is alone in
its session, as honcho and the benchmarks start it, never for a session it shares with other
programs, such as a terminal's. Under cgroups (systemd units, containers) the CPU weights of
the cgroups decide instead: see README, Deploying.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_NICE = 19
AUTOGROUP = Path("/proc/self/autogroup")
PROC = Path("/proc")


def lower_priority(nice: int) -> list[str]:
    """Lower this process's CPU priority by `nice`; the names of what was lowered, for the log."""
    if nice <= 0:
        return []
    lowered = []
    try:
        os.setpriority(os.PRIO_PROCESS, 0, min(MAX_NICE, os.getpriority(os.PRIO_PROCESS, 0) + nice))
        lowered.append("process")
    except (AttributeError, OSError):  # not a POSIX system
        pass
    if AUTOGROUP.exists() and alone_in_session():
        try:
            AUTOGROUP.write_text(str(min(MAX_NICE, nice)))
            lowered.append("session")
        except OSError:  # autogroup scheduling is off, or the kernel refuses
            pass
    return lowered


def alone_in_session() -> bool:
    """Whether every other process of this session is one of this process's ancestors
    (such as the `sh -c` a Procfile runner starts it with)."""
    session = os.getsid(0)
    ancestors = set(_ancestors())
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == os.getpid() or pid in ancestors:
            continue
        try:
            if os.getsid(pid) == session:
                return False
        except OSError:  # it exited meanwhile
            continue
    return True


def _ancestors() -> list[int]:
    pids, pid = [], os.getppid()
    while pid > 1:
        pids.append(pid)
        try:
            pid = int((PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return pids
