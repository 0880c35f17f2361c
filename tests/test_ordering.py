"""Order per alert and channel: a receiver never sees an event before the one it follows (DESIGN §5a).

The race of the issue, many times over: PagerDuty fails an alert's first trigger, the alert
is closed at once, and the resolve must still reach PagerDuty after the trigger got through.
"""

from __future__ import annotations

import pytest

from tests.support import PrivateStack, Receiver, create_channel, create_rule, deliveries, post_alert, settled, wait_for

RACES = 25


class PagerDutyPeer(Receiver):
    """Events API v2 on loopback: 503 to the first trigger of each dedup key, 202 after that."""

    def __init__(self):
        super().__init__()
        self._failed: set[str] = set()
        self.responder = self._answer

    def _answer(self, request) -> tuple[int, dict[str, str], bytes]:
        # Called under the receiver's lock, in arrival order.
        event = request.json()
        refuse = event["event_action"] == "trigger" and event["dedup_key"] not in self._failed
        self._failed.add(event["dedup_key"])
        request.headers["x-answered"] = "503" if refuse else "202"
        return (503, {}, b'{"status":"unavailable"}') if refuse else (202, {}, b'{"status":"success"}')

    @property
    def events_url(self) -> str:
        return self.url("/v2/enqueue")

    def sequence(self, dedup_key: str) -> list[tuple[str, int]]:
        return [
            (r.json()["event_action"], int(r.headers["x-answered"])) for r in self.at("/v2/enqueue") if r.json()["dedup_key"] == dedup_key
        ]


@pytest.fixture
def pagerduty():
    peer = PagerDutyPeer()
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture
def stack(app, pagerduty):
    # Every first trigger fails on purpose: the channel's circuit must not open over it.
    stack = PrivateStack(2, {"PAGERDUTY_EVENTS_URL": pagerduty.events_url, "CIRCUIT_FAILURE_THRESHOLD": "1000"})
    stack.worker()
    yield stack
    stack.close()


def test_a_resolve_never_overtakes_a_trigger_that_needed_a_retry(stack, pagerduty):
    tenant = stack.tenant()
    channel = create_channel(stack.client, tenant, "pagerduty", {"integration_key": "R0UT1NGKEY00000000000000000000000"})
    create_rule(stack.client, tenant, channel["channel_id"], deliver_on=["OPEN", "ACKNOWLEDGED", "CLOSED"])

    alerts = []
    for number in range(RACES):
        alert = post_alert(stack.client, tenant, device_id=f"pump-{number}")
        # Closed at once: its resolve job exists while the trigger is still failing.
        closed = stack.client.post(f"/api/v2/alerts/{alert['alert_id']}/close", headers=tenant.admin)
        assert closed.status_code == 200 and closed.get_json()["jobs_queued"] == 1
        alerts.append(alert)

    jobs = wait_for(lambda: settled(stack.client, tenant, 2 * RACES), timeout=90, message="every trigger and resolve")
    assert {job["status"] for job in jobs} == {"DELIVERED"}
    for alert in alerts:
        assert pagerduty.sequence(f"pulse-alert-{alert['alert_id']}") == [
            ("trigger", 503),
            ("trigger", 202),
            ("resolve", 202),
        ]
    # The resolves waited without spending attempts: one each, the triggers two.
    attempts = {job["event_type"]: set() for job in jobs}
    for job in jobs:
        attempts[job["event_type"]].add(job["attempts"])
    assert attempts == {"OPEN": {2}, "CLOSED": {1}}


def test_a_dead_lettered_event_superseded_by_a_later_one_is_not_replayed(stack, pagerduty, receiver):
    tenant = stack.tenant()
    receiver.script("/hook", [(400, {}, b"the first one is refused")])
    channel = create_channel(stack.client, tenant, "webhook", {"url": receiver.url()})
    create_rule(stack.client, tenant, channel["channel_id"], deliver_on=["OPEN", "CLOSED"])
    alert = post_alert(stack.client, tenant)
    stack.client.post(f"/api/v2/alerts/{alert['alert_id']}/close", headers=tenant.admin)

    jobs = wait_for(lambda: settled(stack.client, tenant, 2), timeout=30, message="both events to settle")
    by_event = {job["event_type"]: job for job in jobs}
    assert (by_event["OPEN"]["status"], by_event["CLOSED"]["status"]) == ("FAILED", "DELIVERED")
    assert [r.json()["event_type"] for r in receiver.at()] == ["OPEN", "CLOSED"]

    replay = stack.client.post(f"/api/v2/deliveries/{by_event['OPEN']['job_id']}/replay", headers=tenant.admin)
    assert replay.status_code == 409
    assert "superseded" in replay.get_json()["detail"]
    dry = stack.client.post("/api/v2/deliveries/replay", json={"dry_run": True}, headers=tenant.admin)
    assert dry.get_json() == {"would_replay": 0}
    assert stack.client.post("/api/v2/deliveries/replay", json={}, headers=tenant.admin).get_json() == {"replayed": 0}
    assert [job["status"] for job in deliveries(stack.client, tenant, event_type="OPEN") if job["event_type"] == "OPEN"] == ["FAILED"]


def test_an_acknowledge_after_a_delivered_trigger_goes_out_at_once(client, tenant, worker, receiver):
    # The session's worker runs without a beat: nothing but the acknowledge itself sends it.
    channel = create_channel(client, tenant, "webhook", {"url": receiver.url()})
    create_rule(client, tenant, channel["channel_id"], deliver_on=["OPEN", "ACKNOWLEDGED"])
    alert = post_alert(client, tenant)
    wait_for(lambda: settled(client, tenant, 1), message="the trigger")
    assert client.post(f"/api/v2/alerts/{alert['alert_id']}/acknowledge", headers=tenant.admin).get_json()["jobs_queued"] == 1
    wait_for(lambda: settled(client, tenant, 2), timeout=10, message="the acknowledge")
    assert [r.json()["event_type"] for r in receiver.at()] == ["OPEN", "ACKNOWLEDGED"]
