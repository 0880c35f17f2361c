"""GET /api/v2/ws against a real gunicorn process (the Procfile's configuration) with a real
WebSocket client: close codes, the subscribe -> push -> unsubscribe flows, tenant isolation,
protocol errors, slow and dead clients, and clean-up on disconnect (DESIGN §8)."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import jwt
import pytest
import requests
import websocket

from tests.support import wait_for
from tests.webserver import WebServer, stalled_connection

API = "/api/v2"


@pytest.fixture(scope="module")
def web(app):
    """The web process, with a short ping and a small outbox so slow clients show quickly."""
    server = WebServer("ws", {"PULSE_WS_OUTBOX_MESSAGES": "32", "PULSE_WS_WRITE_TIMEOUT_SECONDS": "5"})
    server.start()
    yield server
    server.stop()


def token(**claims) -> str:
    now = int(time.time())
    body = {
        "sub": "someone@example.test",
        "tenant_id": "t-anything",
        "role": "customer_admin",
        "iat": now,
        "exp": now + 600,
    }
    body.update(claims)
    body = {name: value for name, value in body.items() if value is not None}
    return jwt.encode(body, os.environ["SECRET_KEY"].encode(), algorithm="HS256")


def post(server: WebServer, path: str, tenant, body: dict | None = None, expect: int = 201) -> dict:
    response = requests.post(server.url + API + path, json=body, headers=tenant.admin, timeout=10)
    assert response.status_code == expect, response.text
    return response.json()


def create_device(server: WebServer, tenant, device_id: str | None = None) -> str:
    device_id = device_id or "dev-" + uuid.uuid4().hex[:8]
    post(server, "/devices", tenant, {"device_id": device_id})
    return device_id


def open_alert(server: WebServer, tenant, **fields) -> dict:
    body = {"device_id": "pump-1", "alert_type": "overheat-" + uuid.uuid4().hex[:6], "severity": 4, "message": "hot"}
    return post(server, "/alerts", tenant, {**body, **fields})


def is_alert(event: str, alert_id: int):
    return lambda m: m["type"] == "alert" and m["event"] == event and m["alert"]["alert_id"] == alert_id


# Handshake and close codes ----------------------------------------------------------------

WRONG_KEY_TOKEN = jwt.encode(
    {"sub": "x", "tenant_id": "t", "role": "customer_admin", "iat": int(time.time()), "exp": int(time.time()) + 600},
    b"not-the-secret-key-of-this-server-at-all",
    algorithm="HS256",
)


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        pytest.param(lambda: None, 4001, id="missing token"),
        pytest.param(lambda: "", 4001, id="empty token"),
        pytest.param(lambda: "not-a-jwt", 4001, id="malformed token"),
        pytest.param(lambda: WRONG_KEY_TOKEN, 4001, id="forged signature"),
        pytest.param(lambda: token(exp=int(time.time()) - 120, iat=int(time.time()) - 600), 4001, id="expired"),
        pytest.param(lambda: token(tenant_id=None, exp=int(time.time()) - 120), 4001, id="expired without tenant"),
        pytest.param(lambda: token(role="operator"), 4003, id="operator role"),
        pytest.param(lambda: token(role="platform_admin"), 4003, id="platform admin role"),
        pytest.param(lambda: token(role="é" * 300), 4003, id="long role"),
        pytest.param(lambda: token(tenant_id=None), 4003, id="no tenant"),
        pytest.param(lambda: token(tenant_id=""), 4003, id="empty tenant"),
        pytest.param(lambda: token(role=None), 4003, id="no role"),
    ],
)
def test_handshake_is_accepted_then_closed_with_code(web, make_token, code):
    client = web.connect(make_token())
    assert client.close_code()[0] == code


def test_admin_and_viewer_tokens_are_accepted(web, tenant):
    for bearer in (tenant.admin_token, tenant.viewer_token):
        client = web.connect(bearer)
        assert client.subscribe_alerts() == []
        client.close()


def test_plain_http_request_gets_a_problem_not_a_500(web):
    response = requests.get(web.url + API + "/ws", params={"token": "whatever"}, timeout=10)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    assert "WebSocket" in response.json()["detail"]


def test_token_never_reaches_the_access_log(web, tenant):
    start = web.log_size()
    client = web.connect(tenant.admin_token)
    client.subscribe_alerts()
    client.close()
    requests.get(web.url + API + "/ws", params={"token": tenant.viewer_token}, timeout=10)
    web.wait_for_log('"GET /api/v2/ws HTTP/1.1" 400', since=start)
    web.wait_for_log(f"of tenant {tenant.tenant_id} disconnected", since=start)
    written = web.log()[start:]
    assert tenant.admin_token not in written
    assert tenant.viewer_token not in written
    assert "token=" not in written


# Alerts -----------------------------------------------------------------------------------


def test_alert_flow_subscribe_push_unsubscribe(web, tenant):
    already_open = open_alert(web, tenant)
    client = web.connect(tenant.admin_token)
    assert [a["alert_id"] for a in client.subscribe_alerts()] == [already_open["alert_id"]]

    opened = open_alert(web, tenant)
    message, _ = client.receive_until(is_alert("OPEN", opened["alert_id"]))
    assert message["alert"]["status"] == "OPEN"
    assert message["alert"]["tenant_id"] == tenant.tenant_id
    listing, _ = client.receive_until(lambda m: m["type"] == "alerts" and len(m["alerts"]) == 2)
    assert [a["alert_id"] for a in listing["alerts"]] == [opened["alert_id"], already_open["alert_id"]]

    post(web, f"/alerts/{opened['alert_id']}/acknowledge", tenant, expect=200)
    message, _ = client.receive_until(is_alert("ACKNOWLEDGED", opened["alert_id"]))
    assert message["alert"]["status"] == "ACKNOWLEDGED"
    listing, _ = client.receive_until(lambda m: m["type"] == "alerts")
    assert {a["alert_id"]: a["status"] for a in listing["alerts"]}[opened["alert_id"]] == "ACKNOWLEDGED"

    post(web, f"/alerts/{opened['alert_id']}/close", tenant, expect=200)
    message, _ = client.receive_until(is_alert("CLOSED", opened["alert_id"]))
    assert message["alert"]["status"] == "CLOSED"
    listing, _ = client.receive_until(lambda m: m["type"] == "alerts" and len(m["alerts"]) == 1)
    assert [a["alert_id"] for a in listing["alerts"]] == [already_open["alert_id"]]

    client.send({"action": "unsubscribe", "type": "alerts"})
    assert client.receive_until(lambda m: m["type"] == "unsubscribed")[0] == {
        "type": "unsubscribed",
        "channel": "alerts",
    }
    # Published in this order: were the alert pushed, it would come before the reading.
    device_id = create_device(web, tenant)
    client.subscribe_device(device_id)
    open_alert(web, tenant)
    post(web, f"/devices/{device_id}/telemetry", tenant, {"metrics": {"marker": 1}})
    message, skipped = client.receive_until(lambda m: m["type"] == "telemetry")
    assert message["data"]["metrics"] == {"marker": 1}
    assert [m for m in skipped if m["type"] in ("alert", "alerts")] == []
    client.close()


def test_repeated_transition_pushes_nothing(web, tenant):
    opened = open_alert(web, tenant)
    post(web, f"/alerts/{opened['alert_id']}/close", tenant, expect=200)
    client = web.connect(tenant.admin_token)
    client.subscribe_alerts()
    post(web, f"/alerts/{opened['alert_id']}/close", tenant, expect=200)
    marker = open_alert(web, tenant)
    message, skipped = client.receive_until(lambda m: m["type"] == "alert")
    assert message["alert"]["alert_id"] == marker["alert_id"]
    assert skipped == []
    client.close()


def test_alert_reaches_its_own_tenant_only(web, tenant, other_tenant):
    mine = web.connect(tenant.viewer_token)
    theirs = web.connect(other_tenant.admin_token)
    mine.subscribe_alerts()
    theirs.subscribe_alerts()

    opened = open_alert(web, tenant, message="tenant one only")
    assert mine.receive_until(is_alert("OPEN", opened["alert_id"]))[0]["alert"]["message"] == "tenant one only"

    # The other tenant's next alert must be the first thing its client hears about.
    their_alert = open_alert(web, other_tenant)
    message, skipped = theirs.receive_until(lambda m: m["type"] == "alert")
    assert message["alert"]["alert_id"] == their_alert["alert_id"]
    assert all(m["type"] == "alerts" and m["alerts"] == [] for m in skipped)
    listing, _ = theirs.receive_until(lambda m: m["type"] == "alerts")
    assert [a["tenant_id"] for a in listing["alerts"]] == [other_tenant.tenant_id]
    mine.close()
    theirs.close()


# Devices ----------------------------------------------------------------------------------


def test_device_flow_subscribe_push_unsubscribe(web, tenant):
    device_id = create_device(web, tenant)
    client = web.connect(tenant.viewer_token)
    client.subscribe_device(device_id)

    posted = post(web, f"/devices/{device_id}/telemetry", tenant, {"metrics": {"temp": 21.5, "rpm": 1200}})
    message = client.receive()
    assert message == {
        "type": "telemetry",
        "device_id": device_id,
        "data": {"timestamp": posted["timestamp"], "metrics": {"temp": 21.5, "rpm": 1200}},
    }

    client.send({"action": "unsubscribe", "type": "device", "device_id": device_id})
    assert client.receive() == {"type": "unsubscribed", "channel": "device", "device_id": device_id}
    post(web, f"/devices/{device_id}/telemetry", tenant, {"metrics": {"temp": 30}})
    client.subscribe_alerts()
    marker = open_alert(web, tenant)
    message, skipped = client.receive_until(lambda m: m["type"] != "alerts")
    assert message["type"] == "alert" and message["alert"]["alert_id"] == marker["alert_id"]
    assert [m for m in skipped if m["type"] == "telemetry"] == []
    client.close()


def test_device_of_another_tenant_is_refused(web, tenant, other_tenant):
    theirs = create_device(web, other_tenant)
    client = web.connect(tenant.admin_token)
    client.send({"action": "subscribe", "type": "device", "device_id": theirs})
    message = client.receive()
    assert message["type"] == "error"
    assert theirs in message["message"]
    # Nothing of theirs arrives, and the connection still works.
    post(web, f"/devices/{theirs}/telemetry", other_tenant, {"metrics": {"secret": 1}})
    mine = create_device(web, tenant)
    client.subscribe_device(mine)
    post(web, f"/devices/{mine}/telemetry", tenant, {"metrics": {"mine": 1}})
    message, skipped = client.receive_until(lambda m: m["type"] == "telemetry")
    assert message["device_id"] == mine and skipped == []
    client.close()


def test_same_device_id_in_two_tenants_stays_apart(web, tenant, other_tenant):
    device_id = "shared-" + uuid.uuid4().hex[:6]
    create_device(web, tenant, device_id)
    create_device(web, other_tenant, device_id)
    client = web.connect(tenant.admin_token)
    client.subscribe_device(device_id)
    post(web, f"/devices/{device_id}/telemetry", other_tenant, {"metrics": {"theirs": 1}})
    post(web, f"/devices/{device_id}/telemetry", tenant, {"metrics": {"mine": 1}})
    assert client.receive()["data"]["metrics"] == {"mine": 1}
    client.close()


# Protocol errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        ("this is not json", "JSON"),
        ("[1, 2, 3]", "object"),
        ('"subscribe"', "object"),
        ({"type": "alerts"}, "action"),
        ({"action": "dance", "type": "alerts"}, "action"),
        ({"action": "subscribe", "type": "weather"}, "type"),
        ({"action": "subscribe"}, "type"),
        ({"action": "subscribe", "type": "device"}, "device_id"),
        ({"action": "subscribe", "type": "device", "device_id": ""}, "device_id"),
        ({"action": "unsubscribe", "type": "device", "device_id": 42}, "device_id"),
        ({"action": "subscribe", "type": "device", "device_id": "no-such-device"}, "not found"),
    ],
)
def test_bad_message_gets_an_error_and_the_connection_stays_open(web, tenant, message, complaint):
    client = web.connect(tenant.admin_token)
    client.send(message)
    answer = client.receive()
    assert answer["type"] == "error"
    assert complaint in answer["message"]
    assert client.subscribe_alerts() == []
    client.close()


# Slow, stalled, dead and departed clients --------------------------------------------------


class Collector(threading.Thread):
    """Reads a client's messages as fast as they come, in the background."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client = client
        self.messages: list[dict] = []
        self.error: Exception | None = None

    def run(self):
        try:
            while True:
                self.messages.append(self.client.receive(timeout=60))
        except Exception as exc:  # the test ends the connection; that ends the thread
            self.error = exc

    def seen(self, predicate) -> bool:
        return any(predicate(m) for m in list(self.messages))


def test_stalled_client_does_not_delay_pushes_to_others(web, tenant):
    stalled = stalled_connection(web, tenant.admin_token)
    stalled.send({"action": "subscribe", "type": "alerts"})
    healthy = web.connect(tenant.admin_token)
    healthy.subscribe_alerts()
    reader = Collector(healthy)
    reader.start()
    start = web.log_size()

    # Far more than the stalled client's socket buffers (a few MB) and outbox hold: ~12 MB,
    # with details just under their 64 KiB cap.
    bulky = {"blob": "x" * 64_000}
    alert_ids = []
    for _ in range(64):
        opened = open_alert(web, tenant, details=bulky)
        post(web, f"/alerts/{opened['alert_id']}/close", tenant, expect=200)
        alert_ids.append(opened["alert_id"])

    web.wait_for_log(f"dropping a connection of tenant {tenant.tenant_id}: outbox full", since=start, timeout=20)
    last = alert_ids[-1]
    wait_for(lambda: reader.seen(is_alert("CLOSED", last)), 20, message="the healthy client's last push")
    received = {m["alert"]["alert_id"] for m in reader.messages if m["type"] == "alert"}
    assert received == set(alert_ids)
    assert reader.error is None

    # After the stalled client is gone, pushes still flow.
    marker = open_alert(web, tenant)
    wait_for(lambda: reader.seen(is_alert("OPEN", marker["alert_id"])), 10, message="a push after the drop")
    assert web.log()[start:].count(f"dropping a connection of tenant {tenant.tenant_id}") == 1
    stalled.close()
    healthy.close()


def test_disconnect_removes_every_subscription(web, tenant):
    first_device, second_device = create_device(web, tenant), create_device(web, tenant)
    staying = web.connect(tenant.admin_token)
    staying.subscribe_alerts()
    leaving = web.connect(tenant.admin_token)
    leaving.subscribe_alerts()
    leaving.subscribe_device(first_device)
    leaving.subscribe_device(second_device)

    start = web.log_size()
    leaving.close()
    line = web.wait_for_log(f"of tenant {tenant.tenant_id} disconnected", since=start)
    assert line.endswith(
        f"tenant {tenant.tenant_id} now has 1 connections, 1 alert subscriptions, 0 device subscriptions"
    )

    start = web.log_size()
    staying.close()
    line = web.wait_for_log(f"of tenant {tenant.tenant_id} disconnected", since=start)
    assert line.endswith(
        f"tenant {tenant.tenant_id} now has 0 connections, 0 alert subscriptions, 0 device subscriptions"
    )


def test_client_that_vanishes_without_closing_is_cleaned_up(web, tenant):
    device_id = create_device(web, tenant)
    client = web.connect(tenant.admin_token)
    client.subscribe_device(device_id)
    start = web.log_size()
    client.ws.sock.close()  # no closing handshake: the process crashed, the cable was pulled
    line = web.wait_for_log(f"of tenant {tenant.tenant_id} disconnected", since=start)
    assert line.endswith("0 connections, 0 alert subscriptions, 0 device subscriptions")


@pytest.fixture(scope="module")
def pinging_web(app):
    """A web process that pings every second (the default is 25 s)."""
    server = WebServer("ws-ping", {"PULSE_WS_PING_SECONDS": "1"})
    server.start()
    yield server
    server.stop()


def test_idle_client_that_answers_pings_is_kept(pinging_web, tenant):
    client = pinging_web.connect(tenant.admin_token)
    client.subscribe_alerts()
    # websocket-client answers pings while it waits in recv(); nothing else arrives.
    deadline = time.monotonic() + 3.5
    pings = 0
    while time.monotonic() < deadline:
        client.ws.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            opcode, _ = client.ws.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            break
        pings += opcode == 9
    assert pings >= 2
    opened = open_alert(pinging_web, tenant)
    assert client.receive_until(is_alert("OPEN", opened["alert_id"]))[0]
    client.close()


def test_dead_client_that_misses_pings_is_reaped(pinging_web, tenant):
    device_id = create_device(pinging_web, tenant)
    client = pinging_web.connect(tenant.admin_token)
    client.subscribe_alerts()
    client.subscribe_device(device_id)
    start = pinging_web.log_size()
    # A frozen client: connected, but it never reads, so it never answers a ping.
    line = pinging_web.wait_for_log(f"of tenant {tenant.tenant_id} disconnected", since=start, timeout=10)
    assert line.endswith("0 connections, 0 alert subscriptions, 0 device subscriptions")
    assert client.close_code()[0] == 1008  # policy violation: ping/pong timeout
    client.close()


def test_graceful_stop_asks_clients_to_reconnect(app, tenant):
    server = WebServer("ws-stop")
    server.start()
    clients = [server.connect(tenant.admin_token) for _ in range(3)]
    for client in clients:
        client.subscribe_alerts()
    server.process.send_signal(signal.SIGTERM)
    for client in clients:
        assert client.close_code() == (1001, "the server is restarting: reconnect")
    # The worker does not sit out its graceful_timeout (20 s) waiting for them.
    server.process.wait(10)
    server.stop()
