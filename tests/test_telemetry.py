"""Telemetry with TELEMETRY_BACKEND=sql: the REST endpoints, and the live feed's shared poll
that pushes readings written by other tools (straight into the table) exactly once."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests

from app.models import TelemetryPoint
from tests.webserver import WebServer


def make_device(client, tenant) -> str:
    device_id = "sensor-" + uuid.uuid4().hex[:8]
    response = client.post("/api/v2/devices", json={"device_id": device_id}, headers=tenant.admin)
    assert response.status_code == 201, response.get_json()
    return device_id


def ingest(client, tenant, device_id, body, expect=201):
    response = client.post(f"/api/v2/devices/{device_id}/telemetry", json=body, headers=tenant.admin)
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def test_posted_reading_is_stored_and_listed_newest_first(client, tenant):
    device_id = make_device(client, tenant)
    base = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    for minute in range(5):
        ingest(
            client,
            tenant,
            device_id,
            {"timestamp": (base + timedelta(minutes=minute)).isoformat(), "metrics": {"temp": 20 + minute}},
        )

    response = client.get(f"/api/v2/devices/{device_id}/telemetry", query_string={"limit": 2}, headers=tenant.viewer)
    assert response.status_code == 200
    page = response.get_json()
    assert page["items"] == [
        {"timestamp": "2026-03-01T12:04:00+00:00", "metrics": {"temp": 24}},
        {"timestamp": "2026-03-01T12:03:00+00:00", "metrics": {"temp": 23}},
    ]
    rest = client.get(
        f"/api/v2/devices/{device_id}/telemetry",
        query_string={"limit": 10, "cursor": page["next_cursor"]},
        headers=tenant.viewer,
    ).get_json()
    assert [item["metrics"]["temp"] for item in rest["items"]] == [22, 21, 20]
    assert rest["next_cursor"] is None


def test_reading_without_timestamp_is_stamped_now(client, tenant):
    device_id = make_device(client, tenant)
    before = datetime.now(timezone.utc)
    answer = ingest(client, tenant, device_id, {"metrics": {"humidity": 40.5}})
    stamped = datetime.fromisoformat(answer["timestamp"])
    assert before <= stamped <= datetime.now(timezone.utc)
    assert answer == {"device_id": device_id, "timestamp": answer["timestamp"], "metrics": {"humidity": 40.5}}


def test_naive_timestamp_is_taken_as_utc(client, tenant):
    device_id = make_device(client, tenant)
    answer = ingest(client, tenant, device_id, {"timestamp": "2026-03-01T08:30:00", "metrics": {"v": 1}})
    assert answer["timestamp"] == "2026-03-01T08:30:00+00:00"


def test_viewer_cannot_ingest(client, tenant):
    device_id = make_device(client, tenant)
    response = client.post(f"/api/v2/devices/{device_id}/telemetry", json={"metrics": {"v": 1}}, headers=tenant.viewer)
    assert response.status_code == 403


def test_device_of_another_tenant_is_404(client, tenant, other_tenant):
    theirs = make_device(client, other_tenant)
    ingest(client, other_tenant, theirs, {"metrics": {"v": 1}})
    assert (
        client.post(f"/api/v2/devices/{theirs}/telemetry", json={"metrics": {"v": 2}}, headers=tenant.admin).status_code
        == 404
    )
    assert client.get(f"/api/v2/devices/{theirs}/telemetry", headers=tenant.admin).status_code == 404
    assert [
        i["metrics"]
        for i in client.get(f"/api/v2/devices/{theirs}/telemetry", headers=other_tenant.admin).get_json()["items"]
    ] == [{"v": 1}]


def test_unknown_device_is_404(client, tenant):
    assert (
        client.post("/api/v2/devices/nobody/telemetry", json={"metrics": {"v": 1}}, headers=tenant.admin).status_code
        == 404
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metrics": {}}, "metrics"),
        ({"metrics": {"temp": "hot"}}, "metrics.temp"),
        ({"metrics": {"on": True}}, "metrics.on"),
        ({"metrics": {"temp": 1}, "timestamp": "yesterday"}, "timestamp"),
        ({"metrics": {"temp": 1}, "unit": "C"}, "unit"),
        ({}, "metrics"),
    ],
)
def test_invalid_reading_is_422_and_stores_nothing(client, tenant, db, body, field):
    device_id = make_device(client, tenant)
    response = client.post(f"/api/v2/devices/{device_id}/telemetry", json=body, headers=tenant.admin)
    assert response.status_code == 422
    assert any(error["field"].startswith(field) for error in response.get_json()["errors"])
    assert client.get(f"/api/v2/devices/{device_id}/telemetry", headers=tenant.admin).get_json()["items"] == []


def test_non_finite_number_is_422(client, tenant):
    device_id = make_device(client, tenant)
    response = client.post(
        f"/api/v2/devices/{device_id}/telemetry",
        data='{"metrics": {"temp": NaN}}',
        headers={**tenant.admin, "Content-Type": "application/json"},
    )
    assert response.status_code in (400, 422)
    assert client.get(f"/api/v2/devices/{device_id}/telemetry", headers=tenant.admin).get_json()["items"] == []


def test_bad_limit_and_cursor_are_422(client, tenant):
    device_id = make_device(client, tenant)
    path = f"/api/v2/devices/{device_id}/telemetry"
    assert client.get(path, query_string={"limit": 0}, headers=tenant.admin).status_code == 422
    assert client.get(path, query_string={"limit": 501}, headers=tenant.admin).status_code == 422
    assert client.get(path, query_string={"cursor": "bm9wZQ"}, headers=tenant.admin).status_code == 422


# The live feed's poll, on the SQL store -------------------------------------------------------


@pytest.fixture(scope="module")
def web(app):
    server = WebServer("telemetry")
    server.start()
    yield server
    server.stop()


def insert_directly(db, tenant_id: str, device_id: str, metrics: dict, at: datetime | None = None) -> datetime:
    """Another tool writing to the table, bypassing Pulse's API (no event is published)."""
    at = at or datetime.now(timezone.utc)
    with db.session(tenant_id) as session:
        session.add(TelemetryPoint(tenant_id=tenant_id, device_id=device_id, ts=at, metrics=metrics))
    return at


def test_reading_written_by_another_tool_is_pushed_once(web, client, db, tenant):
    device_id = make_device(client, tenant)
    insert_directly(db, tenant.tenant_id, device_id, {"old": 1}, datetime.now(timezone.utc) - timedelta(hours=1))
    feed = web.connect(tenant.admin_token)
    feed.subscribe_device(device_id)

    written = insert_directly(db, tenant.tenant_id, device_id, {"by_tool": 7})
    message = feed.receive(timeout=5)  # WS_POLL_SECONDS is 1 in the tests
    assert message == {
        "type": "telemetry",
        "device_id": device_id,
        "data": {"timestamp": written.isoformat(), "metrics": {"by_tool": 7}},
    }

    # A reading posted through the API arrives at once, by pub/sub; the poll, which sees it in
    # the table a moment later, does not push it again, nor the one above.
    posted = requests.post(
        f"{web.url}/api/v2/devices/{device_id}/telemetry",
        json={"metrics": {"by_api": 1}},
        headers=tenant.admin,
        timeout=10,
    ).json()
    assert feed.receive(timeout=5)["data"] == {"timestamp": posted["timestamp"], "metrics": {"by_api": 1}}
    marker = insert_directly(
        db, tenant.tenant_id, device_id, {"marker": 1}, datetime.now(timezone.utc) + timedelta(seconds=2)
    )
    message = feed.receive(timeout=5)
    assert message["data"] == {"timestamp": marker.isoformat(), "metrics": {"marker": 1}}
    feed.close()


def test_older_reading_written_late_is_not_news(web, client, db, tenant):
    device_id = make_device(client, tenant)
    feed = web.connect(tenant.admin_token)
    feed.subscribe_device(device_id)
    now = datetime.now(timezone.utc)
    insert_directly(db, tenant.tenant_id, device_id, {"first": 1}, now)
    assert feed.receive(timeout=5)["data"]["metrics"] == {"first": 1}
    insert_directly(db, tenant.tenant_id, device_id, {"backfill": 1}, now - timedelta(minutes=5))
    insert_directly(db, tenant.tenant_id, device_id, {"next": 1}, now + timedelta(seconds=1))
    assert feed.receive(timeout=5)["data"]["metrics"] == {"next": 1}
    feed.close()
