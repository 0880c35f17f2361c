"""`make run`'s launcher (app.devstack): the stack on the embedded defaults, and down again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import requests

from tests.support import ROOT, free_port, wait_for


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.add(pid)
        except OSError:
            pass
    return alive


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as cmdline:
            return cmdline.read().replace("\0", " ")
    except OSError:  # gone already
        return ""


def _healthy(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_sigterm_stops_every_process_of_the_stack(tmp_path):
    """A process manager's SIGTERM reaches the launcher alone (Ctrl-C reaches them all): it
    stops honcho's processes and the embedded Redis, leaving nothing running."""
    port = free_port()
    env = {name: value for name, value in os.environ.items() if name not in ("REDIS_URL", "CELERY_BROKER_URL", "MIGRATION_DATABASE_URL")}
    env.update(
        PULSE_INSTANCE_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'pulse.db'}",
        PORT=str(port),
        FLOWER_PORT=str(free_port()),
        WORKER_METRICS_PORT="0",
    )
    with open(tmp_path / "devstack.log", "wb") as log:
        launcher = subprocess.Popen([sys.executable, "-m", "app.devstack"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: _healthy(f"http://127.0.0.1:{port}/healthz"), timeout=120, message="make run's web")
        stack = _descendants(launcher.pid)
        commands = " ".join(_command(pid) for pid in stack)
        assert "redis-server" in commands and "honcho" in commands and "celery" in commands, commands

        launcher.send_signal(signal.SIGTERM)
        launcher.wait(60)
        wait_for(lambda: not _alive(stack), timeout=30, message="every process of the stack to stop")
    finally:
        # Whatever is left of the stack (its own session, even once the launcher is gone).
        try:
            os.killpg(launcher.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
