"""The embedded default of `make run`: the same API and domain code on a SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
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
