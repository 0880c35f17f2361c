"""The deployment files agree with the code: four processes, queue priority, safe defaults."""

from __future__ import annotations

import configparser
import re

from app.severity import QUEUES
from tests.support import ROOT


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def test_procfile_runs_the_four_processes():
    entries = procfile()
    assert set(entries) == {"web", "worker", "beat", "flower"}
    assert "gunicorn" in entries["web"] and '"app:create_app()"' in entries["web"]
    assert "${HOST:-127.0.0.1}:${PORT:-8000}" in entries["web"]


def test_workers_ask_the_queues_most_urgent_first():
    supervisor = configparser.RawConfigParser()
    supervisor.read(ROOT / "deploy" / "supervisord.conf")
    for command in (procfile()["worker"], supervisor["program:worker"]["command"]):
        assert re.search(r"--queues[ =](\S+)", command).group(1) == ",".join(QUEUES)


def test_flower_listens_on_loopback_unless_configured():
    supervisor = configparser.RawConfigParser()
    supervisor.read(ROOT / "deploy" / "supervisord.conf")
    assert "--address=${FLOWER_ADDRESS:-127.0.0.1}" in procfile()["flower"]
    assert "--address=127.0.0.1" in supervisor["program:flower"]["command"]
    assert {"web", "worker", "beat", "flower"} == {s.split(":", 1)[1] for s in supervisor.sections() if s.startswith("program:")}


def test_the_access_log_never_shows_a_query_string():
    namespace: dict = {}
    exec(compile((ROOT / "deploy" / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), namespace)
    assert namespace["worker_class"] == "gevent"
    # Neither %(r)s (the request line) nor %(q)s (the query): the path alone, never ?token=...
    assert not re.search(r"%\((r|q)\)s", namespace["access_log_format"])
    assert "%(U)s" in namespace["access_log_format"]


def test_the_celery_command_line_uses_pulses_broker_not_celerys_default(tmp_path):
    """`celery -A tasks ...` run from the project, with only REDIS_URL set (as `make run` does)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {name: value for name, value in os.environ.items() if name != "CELERY_BROKER_URL"}
    env.update(REDIS_URL="unix:///run/pulse-test/redis.sock", PULSE_INSTANCE_DIR=str(tmp_path))
    report = subprocess.run(
        # The console script, as the Procfile runs it (`python -m celery` would put the
        # project on sys.path for the whole run and hide the difference).
        [str(Path(sys.executable).parent / "celery"), "-A", "tasks", "report"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert report.returncode == 0, report.stderr
    assert "transport:redis" in report.stdout
    assert "/run/pulse-test/redis.sock" in report.stdout
    assert "amqp" not in report.stdout


def test_the_grafana_dashboard_plots_metrics_pulse_exposes(client, app):
    """Every metric the dashboard queries is one the web process or a worker serves."""
    import json

    from prometheus_client import generate_latest

    from app.delivery.metrics import DeliveryMetrics

    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(pulse_[a-z_]+)", target["expr"])
    }
    web = client.get("/metrics").get_data(as_text=True)
    worker = generate_latest(DeliveryMetrics(app.extensions["pulse"].admission).registry).decode()
    # Declared families, with or without samples yet, and the series names they expose.
    suffixes = {"counter": ("",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    exposed = {
        name + suffix
        for name, kind in re.findall(r"^# TYPE (pulse_[a-z_]+) (\w+)", web + "\n" + worker, re.MULTILINE)
        for suffix in suffixes.get(kind, ("",))
    }
    assert queried and queried <= exposed, queried - exposed


def test_the_web_worker_warms_its_services_without_connecting(app):
    # gunicorn's post_worker_init warms the services before the worker takes requests; a
    # broker that is down must not stop it.
    import runpy
    import socket
    from dataclasses import replace
    from types import SimpleNamespace

    from app.services import Services
    from tests.support import free_port

    port = free_port()
    nowhere = f"redis://127.0.0.1:{port}/0"
    services = Services(replace(app.extensions["pulse"].settings, broker_url=nowhere))
    hooks = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    hooks["post_worker_init"](SimpleNamespace(wsgi=SimpleNamespace(extensions={"pulse": services}), alive=False))
    assert "dispatcher" in services.__dict__ and services.celery.conf.broker_write_url == nowhere
    with socket.socket() as probe:  # still nothing listens there: the warm-up never connected
        assert probe.connect_ex(("127.0.0.1", port)) != 0
