"""One alert whose rules match all seven channel types reaches all seven real peers through
the worker; the test endpoint answers 200 for each working channel and 502 for a broken one.

Peers: an HTTP server standing in for a webhook receiver, Slack, PagerDuty and Teams; an
aiosmtpd SMTP server; Net-SNMP's snmptrapd; the Mosquitto broker on 127.0.0.1:1883.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import replace

import paho.mqtt.client as mqtt
import pytest
from aiosmtpd.controller import Controller

from app import create_app
from app.config import Settings
from tests.snmptrapd import TrapReceiver
from tests.support import Receiver, WorkerProcess, create_channel, create_rule, make_tenant, settled, wait_for

PREFIX = "1.3.6.1.4.1.99999"


class Mailbox:
    """An aiosmtpd handler that keeps every envelope."""

    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK queued"


class FreePortController(Controller):
    # Controller checks its port once started; with port 0 it must first learn the real one.
    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class Subscriber:
    """A paho client subscribed to one topic filter on the real broker."""

    def __init__(self, topic: str):
        self.messages = []
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"e2e-{uuid.uuid4().hex[:8]}")
        self.client.on_message = lambda client, userdata, message: self.messages.append(message)
        self.client.on_subscribe = lambda *args: self.ready.set()
        self.client.on_connect = lambda client, *args: client.subscribe(topic, qos=1)
        try:
            self.client.connect("127.0.0.1", 1883)
        except OSError as exc:
            pytest.fail(f"Mosquitto is not reachable on 127.0.0.1:1883 (make test starts it): {exc}")
        self.client.loop_start()
        assert self.ready.wait(10), "the MQTT subscription was not confirmed"

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    http = Receiver()
    http.start()
    mailbox = Mailbox()
    smtp = FreePortController(mailbox, hostname="127.0.0.1", port=0)
    smtp.start()
    traps = TrapReceiver(tmp_path_factory.mktemp("snmptrapd"), ["disableAuthorization yes", "authCommunity log e2e-community"])
    topic_root = f"pulse-e2e-{uuid.uuid4().hex[:8]}"
    subscriber = Subscriber(f"{topic_root}/#")
    yield {"http": http, "smtp": smtp, "mailbox": mailbox, "traps": traps, "topic_root": topic_root, "mqtt": subscriber}
    subscriber.stop()
    traps.stop()
    smtp.stop()
    http.stop()


@pytest.fixture(scope="module")
def pagerduty_url(peers):
    return peers["http"].url("/pagerduty/v2/enqueue")


@pytest.fixture(scope="module")
def e2e_app(app, pagerduty_url):
    """The API with PagerDuty's events endpoint pointed at the test peer."""
    settings = Settings.from_env()
    application = create_app(replace(settings, delivery=replace(settings.delivery, pagerduty_events_url=pagerduty_url)), test_config={"TESTING": True})
    yield application
    application.extensions["pulse"].db.dispose()


@pytest.fixture(scope="module")
def e2e_worker(app, pagerduty_url):
    process = WorkerProcess("all-channels", {"PAGERDUTY_EVENTS_URL": pagerduty_url})
    process.start()
    yield process
    process.stop()


def channel_configs(peers):
    http = peers["http"]
    return {
        "webhook": {"url": http.url("/webhook"), "secret": "whsec_" + "c2VjcmV0LWZvci1lMmUtdGVzdHMtMDEyMzQ1Ng=="},
        "slack": {"webhook_url": http.url("/slack/T000/B000/e2eSlackToken")},
        "pagerduty": {"integration_key": "e2e0000000000000000000000000key1"},
        "teams": {"webhook_url": http.url("/teams/workflow/e2eTeamsToken")},
        "email": {
            "smtp": {"host": "127.0.0.1", "port": peers["smtp"].port, "security": "none", "from": "pulse@e2e.test"},
            "recipients": {"to": ["ops@e2e.test"], "bcc": ["audit@e2e.test"]},
        },
        "snmp": {"host": "127.0.0.1", "port": peers["traps"].port, "version": "2c", "community": "e2e-community"},
        "mqtt": {"host": "127.0.0.1", "port": 1883, "topic": peers["topic_root"] + "/{tenant_id}/{device_id}", "qos": 1},
    }


def test_one_alert_reaches_all_seven_peers_through_the_worker(e2e_app, e2e_worker, peers):
    client = e2e_app.test_client()
    tenant = make_tenant(e2e_app)
    configs = channel_configs(peers)
    for channel_type, config in configs.items():
        channel = create_channel(client, tenant, channel_type, config)
        create_rule(client, tenant, channel["channel_id"], min_severity=4)
    response = client.post(
        "/api/v2/alerts",
        json={"device_id": "boiler-7", "alert_type": "overpressure", "severity": "critical", "message": "Boiler 7 at 9.1 bar"},
        headers=tenant.admin,
    )
    assert response.status_code == 201 and response.get_json()["jobs_queued"] == 7
    alert_id = response.get_json()["alert_id"]

    jobs = wait_for(lambda: settled(client, tenant, 7), timeout=60, message="all seven deliveries")
    assert {job["status"] for job in jobs} == {"DELIVERED"}, [(j["channel_id"], j["status"], j["last_error"]) for j in jobs]

    http = peers["http"]
    assert http.at("/webhook")[-1].json()["alert_id"] == alert_id
    assert "Boiler 7 at 9.1 bar" in json.dumps(http.at("/slack/T000/B000/e2eSlackToken")[-1].json())
    event = http.at("/pagerduty/v2/enqueue")[-1].json()
    assert (event["event_action"], event["dedup_key"], event["payload"]["severity"]) == ("trigger", f"pulse-alert-{alert_id}", "critical")
    card = http.at("/teams/workflow/e2eTeamsToken")[-1].json()
    assert card["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"

    envelope = wait_for(lambda: [e for e in peers["mailbox"].envelopes if b"boiler-7" in e.content], message="the email")[-1]
    assert set(envelope.rcpt_tos) == {"ops@e2e.test", "audit@e2e.test"}

    trap = peers["traps"].wait_for(lambda t: t.get(f"{PREFIX}.1.1") == str(alert_id).encode(), "the alert id", seconds=10)
    assert trap.value(f"{PREFIX}.1.2") == b"boiler-7"

    messages = wait_for(lambda: [m for m in peers["mqtt"].messages if json.loads(m.payload).get("alert_id") == alert_id], message="the MQTT message")
    assert messages[-1].topic == f"{peers['topic_root']}/{tenant.tenant_id}/boiler-7" and messages[-1].qos == 1


def test_the_test_endpoint_answers_200_for_every_working_channel(e2e_app, peers):
    client = e2e_app.test_client()
    tenant = make_tenant(e2e_app)
    for channel_type, config in channel_configs(peers).items():
        channel = create_channel(client, tenant, channel_type, config)
        response = client.post(f"/api/v2/channels/{channel['channel_id']}/test", headers=tenant.admin)
        assert response.status_code == 200, (channel_type, response.get_json())
        assert response.get_json()["status"] == "ok"


def test_the_test_endpoint_answers_502_with_the_peers_error(e2e_app, peers):
    client = e2e_app.test_client()
    tenant = make_tenant(e2e_app)
    http = peers["http"]
    http.script("/slack/dead", [(404, {}, b"no_service")])
    broken = {
        "slack": ({"webhook_url": http.url("/slack/dead")}, "no_service"),
        "email": ({"smtp": {"host": "127.0.0.1", "port": 9, "security": "none", "from": "p@e2e.test"}, "recipients": {"to": ["x@e2e.test"]}}, "refused"),
        "mqtt": ({"host": "127.0.0.1", "port": 9, "topic": "pulse/x"}, "refused"),
    }
    for channel_type, (config, expected) in broken.items():
        channel = create_channel(client, tenant, channel_type, config)
        response = client.post(f"/api/v2/channels/{channel['channel_id']}/test", headers=tenant.admin)
        assert response.status_code == 502, channel_type
        assert expected in response.get_json()["detail"], response.get_json()
