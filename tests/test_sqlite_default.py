"""The embedded default of `make run`: the same API and domain code on a SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from app import create_app
from app.config import Settings
from tests.support import ROOT, create_channel, create_rule, make_tenant, post_alert


@pytest.fixture
def sqlite_app(tmp_path, redis):
    url = f"sqlite:///{tmp_path / 'pulse.db'}"
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT, env={**os.environ, "DATABASE_URL": url, "MIGRATION_DATABASE_URL": url}, check=True, capture_output=True)
    application = create_app(replace(Settings.from_env(), database_url=url), test_config={"TESTING": True})
    yield application
    application.extensions["pulse"].db.dispose()


def test_alert_lifecycle_and_jobs_on_sqlite(sqlite_app):
    client = sqlite_app.test_client()
    tenant = make_tenant(sqlite_app)
    channel = create_channel(client, tenant, "webhook", {"url": "http://127.0.0.1:9/hook"})
    create_rule(client, tenant, channel["channel_id"], deliver_on=["OPEN", "CLOSED"])
    first = post_alert(client, tenant)
    duplicate = client.post("/api/v2/alerts", json={"device_id": "pump-1", "alert_type": "overheat", "severity": 4, "message": "again"}, headers=tenant.admin)
    assert first["jobs_queued"] == 1
    assert duplicate.status_code == 200 and duplicate.get_json()["alert_id"] == first["alert_id"]
    closed = client.post(f"/api/v2/alerts/{first['alert_id']}/close", headers=tenant.admin).get_json()
    assert closed["status"] == "CLOSED" and closed["jobs_queued"] == 1
    reopened = client.post("/api/v2/alerts", json={"device_id": "pump-1", "alert_type": "overheat", "severity": 4, "message": "back"}, headers=tenant.admin)
    assert reopened.status_code == 201
    jobs = client.get("/api/v2/deliveries", headers=tenant.admin).get_json()["items"]
    assert sorted(job["event_type"] for job in jobs) == ["CLOSED", "OPEN", "OPEN"]
    assert client.get("/api/v2/alerts?status=OPEN", headers=tenant.admin).get_json()["items"][0]["alert_id"] == reopened.get_json()["alert_id"]


# The delivery path's statements that count or look up waiting jobs, with the index each
# lookup of notification_jobs must take on SQLite (a new file, no statistics).
def _plan(connection, statement) -> list[str]:
    from sqlalchemy.dialects import sqlite

    compiled = statement.compile(dialect=sqlite.dialect(paramstyle="named"))
    expanded = compiled._process_parameters_for_postcompile(compiled.construct_params(_check=False), _populate_self=False)
    values = {name: 1 if value is None else value for name, value in expanded.parameters.items()}
    return [row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + expanded.statement, values)]


@pytest.mark.parametrize("name", ["_CLAIM", "_SENDING_WITH", "_RECORD_ALONE", "_OUTCOME_FACTS", "_FEED_TENANT", "_QUEUED_COUNT"])
def test_sqlite_looks_jobs_up_by_their_own_indexes(sqlite_app, name):
    from app.delivery import jobs

    with sqlite_app.extensions["pulse"].db.engine.connect() as connection:
        plan = _plan(connection, getattr(jobs, name))
    lookups = [step for step in plan if "notification_jobs" in step or step.startswith(("SCAN", "SEARCH"))]
    # A scan of the jobs table (or of every waiting job through the sweeper's status index)
    # would cost each delivery time proportional to the backlog, inside the writer's turn.
    assert not [step for step in lookups if step.startswith("SCAN") and step not in ("SCAN CONSTANT ROW", "SCAN chosen")], plan
    assert not [step for step in lookups if "ix_notification_jobs_status_next" in step], plan


def test_a_worker_on_sqlite_delivers_every_job_once_while_alerts_come_in(tmp_path, receiver):
    """The make-run path end to end: the worker's eight threads claim and record in write
    groups (app.sqlite_groups) while the API opens alerts on the same file."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.support import PrivateStack, wait_for

    url = f"sqlite:///{tmp_path / 'pulse.db'}"
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT, env={**os.environ, "DATABASE_URL": url, "MIGRATION_DATABASE_URL": url}, check=True, capture_output=True)
    stack = PrivateStack(13, {"DATABASE_URL": url, "WORKER_METRICS_PORT": "0"})
    try:
        stack.worker()
        tenant = stack.tenant()
        for number in range(3):
            channel = create_channel(stack.client, tenant, "webhook", {"url": receiver.url(f"/c{number}")})
            create_rule(stack.client, tenant, channel["channel_id"])

        def open_alert(number: int) -> int:
            client = stack.app.test_client()
            body = {"device_id": f"pump-{number}", "alert_type": "overheat", "severity": 3, "message": f"alert {number}"}
            return client.post("/api/v2/alerts", json=body, headers=tenant.admin).status_code

        with ThreadPoolExecutor(4) as pool:
            assert set(pool.map(open_alert, range(60))) == {201}
        wait_for(lambda: len(receiver.requests) >= 180, timeout=90, message="180 deliveries")
        time.sleep(1)  # a duplicate would arrive by now

        ids = [request.headers["webhook-id"] for request in receiver.requests]
        assert len(ids) == 180 and len(set(ids)) == 180
        with stack.db.engine.connect() as connection:
            statuses = connection.exec_driver_sql("SELECT status, count(*) FROM notification_jobs GROUP BY status").all()
            attempts = connection.exec_driver_sql("SELECT count(*), sum(success) FROM delivery_log").one()
        assert statuses == [("DELIVERED", 180)]
        assert tuple(attempts) == (180, 180)
    finally:
        stack.close()
