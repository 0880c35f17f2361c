"""TELEMETRY_BACKEND=influxdb, against a local stand-in for InfluxDB 2.x's HTTP API.

No InfluxDB 2.x server can be installed on this machine kind (Debian ships 1.6, whose API
influxdb-client cannot use), so `tests/influxdb_peer.py` plays the server: it checks the line
protocol and the Flux it receives and answers in InfluxDB's documented annotated CSV. The
store is tested directly, then through a real web process with the live feed on top.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import requests

from app import create_app
from app.config import Settings
from app.live import Connection
from app.telemetry import Reading, TelemetryStoreError, make_store
from app.telemetry.influxdb import InfluxTelemetryStore, latest_query
from tests.influxdb_peer import InfluxPeer
from tests.support import free_port, wait_for
from tests.webserver import WebServer

T0 = datetime(2026, 5, 4, 10, 0, 0, 250_000, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def peer():
    server = InfluxPeer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def store(peer):
    influx = InfluxTelemetryStore(url=peer.url, token=peer.token, org=peer.org, bucket=peer.bucket)
    yield influx
    influx.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_write_sends_one_line_of_line_protocol(peer, store):
    tenant_id = unique("t")
    store.write(tenant_id, "pump 7,a=b", Reading(T0, {"temp": 21.5, "rpm": 1200}))
    assert peer.rejected == []
    micros = int(T0.timestamp()) * 1_000_000 + 250_000
    assert peer.lines[-1] == f"telemetry,device_id=pump\\ 7\\,a\\=b,tenant_id={tenant_id} rpm=1200,temp=21.5 {micros}"


def test_integer_metrics_are_written_as_floats(peer, store):
    # InfluxDB refuses a field whose type changes; always-float keeps 21 and 21.5 compatible.
    tenant_id = unique("t")
    store.write(tenant_id, "d", Reading(T0, {"count": 3}))
    assert peer.lines[-1].split(" ")[1] == "count=3"
    assert not peer.lines[-1].split(" ")[1].endswith("i")
    assert store.latest(tenant_id, "d", 1)[0].metrics == {"count": 3.0}


def test_latest_sends_pulses_flux_and_reads_annotated_csv(peer, store):
    tenant_id, device_id = unique("t"), unique("d")
    for minute in range(4):
        store.write(tenant_id, device_id, Reading(T0 + timedelta(minutes=minute), {"temp": 20.0 + minute, "hum": 40.0}))
    store.write(tenant_id, unique("other-device"), Reading(T0 + timedelta(hours=1), {"temp": 99.0}))
    store.write(unique("other-tenant"), device_id, Reading(T0 + timedelta(hours=1), {"temp": 98.0}))

    readings = store.latest(tenant_id, device_id, 2)

    assert readings == [
        Reading(T0 + timedelta(minutes=3), {"hum": 40.0, "temp": 23.0}),
        Reading(T0 + timedelta(minutes=2), {"hum": 40.0, "temp": 22.0}),
    ]
    assert peer.queries[-1].text == latest_query(peer.bucket, tenant_id, device_id, 2)
    assert peer.rejected == []


def test_latest_honours_before_and_after(peer, store):
    tenant_id, device_id = unique("t"), unique("d")
    for minute in range(6):
        store.write(tenant_id, device_id, Reading(T0 + timedelta(minutes=minute), {"n": float(minute)}))
    page = store.latest(tenant_id, device_id, 10, before=T0 + timedelta(minutes=4), after=T0 + timedelta(minutes=1))
    assert [r.metrics["n"] for r in page] == [3.0, 2.0, 1.0]
    assert peer.queries[-1].stop_us is not None and peer.queries[-1].start_us > 0


def test_ids_are_escaped_as_flux_string_literals(peer, store):
    tenant_id = unique("t")
    device_id = 'tricky"${device}\\name'
    store.write(tenant_id, device_id, Reading(T0, {"v": 1.0}))
    assert store.latest(tenant_id, device_id, 5) == [Reading(T0, {"v": 1.0})]
    assert peer.queries[-1].device_id == device_id
    assert '\\"\\${device}\\\\name' in peer.queries[-1].text
    assert peer.rejected == []


def test_tags_and_sparse_fields_from_other_tools(peer, store):
    tenant_id, device_id = unique("t"), unique("d")
    peer.add_point(tenant_id, device_id, {"temp": 20.0}, T0, host="edge-1")
    peer.add_point(tenant_id, device_id, {"temp": 21.0, "battery": 87.0}, T0 + timedelta(seconds=10), host="edge-1")
    assert store.latest(tenant_id, device_id, 5) == [
        Reading(T0 + timedelta(seconds=10), {"battery": 87.0, "temp": 21.0}),
        Reading(T0, {"temp": 20.0}),
    ]


def test_device_without_readings_reads_empty(store):
    assert store.latest(unique("t"), unique("d"), 5) == []


def test_wrong_token_is_a_store_error(peer):
    influx = InfluxTelemetryStore(url=peer.url, token="wrong", org=peer.org, bucket=peer.bucket)
    with pytest.raises(TelemetryStoreError, match="401"):
        influx.write("t", "d", Reading(T0, {"v": 1.0}))
    with pytest.raises(TelemetryStoreError, match="401"):
        influx.latest("t", "d", 1)
    influx.close()


def test_unreachable_server_is_a_store_error():
    influx = InfluxTelemetryStore(
        url=f"http://127.0.0.1:{free_port()}", token="x", org="o", bucket="b", timeout_ms=2000
    )
    with pytest.raises(TelemetryStoreError, match="unreachable"):
        influx.write("t", "d", Reading(T0, {"v": 1.0}))
    with pytest.raises(TelemetryStoreError, match="unreachable"):
        influx.latest("t", "d", 1)
    influx.close()


def test_incomplete_influxdb_settings_are_refused(app):
    settings = replace(
        Settings.from_env(), telemetry_backend="influxdb", influxdb_url=None, influxdb_org="o", influxdb_bucket=None
    )
    with pytest.raises(ValueError, match="INFLUXDB_URL, INFLUXDB_BUCKET"):
        make_store(settings, app.extensions["pulse"].db)
    with pytest.raises(ValueError, match="sql or influxdb"):
        make_store(replace(settings, telemetry_backend="cassandra"), app.extensions["pulse"].db)


# Through the web process ------------------------------------------------------------------


@pytest.fixture(scope="module")
def web(app, peer):
    server = WebServer(
        "influxdb",
        {
            "TELEMETRY_BACKEND": "influxdb",
            "INFLUXDB_URL": peer.url,
            "INFLUXDB_TOKEN": peer.token,
            "INFLUXDB_ORG": peer.org,
            "INFLUXDB_BUCKET": peer.bucket,
        },
    )
    server.start()
    yield server
    server.stop()


def make_device(web, tenant) -> str:
    device_id = unique("meter")
    response = requests.post(
        f"{web.url}/api/v2/devices", json={"device_id": device_id}, headers=tenant.admin, timeout=10
    )
    assert response.status_code == 201, response.text
    return device_id


def test_posted_reading_is_written_listed_and_pushed(web, peer, tenant):
    device_id = make_device(web, tenant)
    feed = web.connect(tenant.viewer_token)
    feed.subscribe_device(device_id)

    response = requests.post(
        f"{web.url}/api/v2/devices/{device_id}/telemetry",
        json={"timestamp": "2026-05-04T10:00:00.5+00:00", "metrics": {"kwh": 12.5}},
        headers=tenant.admin,
        timeout=10,
    )
    assert response.status_code == 201, response.text
    assert peer.lines[-1].startswith(f"telemetry,device_id={device_id},tenant_id={tenant.tenant_id} kwh=12.5 ")
    assert feed.receive(timeout=5) == {
        "type": "telemetry",
        "device_id": device_id,
        "data": {"timestamp": "2026-05-04T10:00:00.500000+00:00", "metrics": {"kwh": 12.5}},
    }
    listed = requests.get(f"{web.url}/api/v2/devices/{device_id}/telemetry", headers=tenant.viewer, timeout=10).json()
    assert listed == {
        "items": [{"timestamp": "2026-05-04T10:00:00.500000+00:00", "metrics": {"kwh": 12.5}}],
        "next_cursor": None,
    }
    feed.close()


def test_reading_written_by_another_tool_reaches_subscribers(web, peer, tenant):
    device_id = make_device(web, tenant)
    feed = web.connect(tenant.admin_token)
    feed.subscribe_device(device_id)
    at = datetime.now(timezone.utc).replace(microsecond=123_000)
    peer.add_point(tenant.tenant_id, device_id, {"kwh": 3.0}, at, host="telegraf-1")
    assert feed.receive(timeout=5) == {  # WS_POLL_SECONDS is 1 in the tests
        "type": "telemetry",
        "device_id": device_id,
        "data": {"timestamp": at.isoformat(), "metrics": {"kwh": 3.0}},
    }
    feed.close()


def test_poll_asks_once_per_device_per_interval_however_many_listen(web, peer, tenant):
    crowded, quiet = make_device(web, tenant), make_device(web, tenant)
    feeds = [web.connect(tenant.admin_token) for _ in range(5)]
    for feed in feeds:
        feed.subscribe_device(crowded)
    feeds[0].subscribe_device(quiet)

    before = len(peer.queries_for(crowded))
    started = time.monotonic()
    time.sleep(2.5)
    asked = len(peer.queries_for(crowded)) - before
    elapsed = time.monotonic() - started
    # One query per interval (1 s here) for the device, not one per connection (5 per interval).
    assert 1 <= asked <= elapsed + 1.5
    assert len(peer.queries_for(quiet)) >= 1

    for feed in feeds:
        feed.close()
    # With every subscriber gone, the poll stops asking about the device.
    wait_for(
        lambda: "tenant " + tenant.tenant_id + " now has 0 connections" in web.log(), 10, message="the last disconnect"
    )
    settled = len(peer.queries_for(crowded))
    time.sleep(2.0)
    assert len(peer.queries_for(crowded)) - settled <= 1


def test_store_outage_is_503_and_the_feed_still_subscribes(app, tenant):
    settings = replace(
        app.extensions["pulse"].settings,
        telemetry_backend="influxdb",
        influxdb_url=f"http://127.0.0.1:{free_port()}",
        influxdb_token="x",
        influxdb_org="o",
        influxdb_bucket="b",
    )
    down = create_app(settings, test_config={"TESTING": True})
    client = down.test_client()
    assert client.post("/api/v2/devices", json={"device_id": "meter-1"}, headers=tenant.admin).status_code == 201
    response = client.post("/api/v2/devices/meter-1/telemetry", json={"metrics": {"v": 1}}, headers=tenant.admin)
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/problem+json"
    assert "telemetry store is unavailable" in response.get_json()["detail"]
    assert client.get("/api/v2/devices/meter-1/telemetry", headers=tenant.admin).status_code == 503

    # The feed confirms the subscription anyway; the poll takes over once the store is back.
    feed = down.extensions["live"]
    sent = []
    connection = Connection(tenant.tenant_id, "someone", ListTransport(sent), 8)
    connection.start()
    feed.hub.add(connection)
    feed.handle(connection, json.dumps({"action": "subscribe", "type": "device", "device_id": "meter-1"}))
    wait_for(lambda: sent, 5, message="the confirmation")
    assert json.loads(sent[0]) == {"type": "subscribed", "channel": "device", "device_id": "meter-1"}
    feed.disconnect(connection)
    down.extensions["telemetry"].close()
    down.extensions["pulse"].db.dispose()


class ListTransport:
    def __init__(self, sent: list):
        self.sent = sent

    def send(self, text: str) -> None:
        self.sent.append(text)

    def abort(self) -> None:
        pass

    def close(self, code: int, reason: str) -> None:
        pass
