"""Escalation steps on routing rules (DESIGN §6a), with real worker and beat processes.

Two beat schedulers run side by side the whole module long, so every test here also checks
that a step happens exactly once however many beats look at it. Steps are seconds long.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from app.channels.formatting import headline
from app.channels.slack import slack_message
from app.channels.teams import adaptive_card_message
from tests.support import PrivateStack, Receiver, create_channel, create_rule, deliveries, post_alert, wait_for
from tests.webserver import WebServer


@pytest.fixture(scope="module")
def pagerduty():
    peer = Receiver(default=(202, {}, b'{"status":"success"}'))
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def stack(app, pagerduty):
    stack = PrivateStack(15, {"PAGERDUTY_EVENTS_URL": pagerduty.url("/v2/enqueue")})
    stack.worker()
    stack.beat()
    stack.beat()
    yield stack
    stack.close()


def hook(api, tenant, receiver, path: str) -> int:
    return create_channel(api, tenant, "webhook", {"url": receiver.url(path)}, name=path)["channel_id"]


def escalated(api, tenant, alert_id):
    return sorted(
        (job["escalation_step"], job["channel_id"], job["status"])
        for job in deliveries(api, tenant, alert_id=alert_id)
        if job["event_type"] == "ESCALATED"
    )


# Validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "steps, field",
    [
        ([{"after_seconds": 0, "channel_ids": ["C"]}], "escalation.0.after_seconds"),
        ([{"after_seconds": 60, "channel_ids": ["C"]}, {"after_seconds": 60, "channel_ids": ["C"]}], "escalation"),
        ([{"after_seconds": 120, "channel_ids": ["C"]}, {"after_seconds": 60, "channel_ids": ["C"]}], "escalation"),
        ([{"after_seconds": 60, "channel_ids": []}], "escalation.0.channel_ids"),
        ([{"after_seconds": 60}], "escalation.0.channel_ids"),
        ([{"after_seconds": 60, "channel_ids": [987654321]}], "escalation.0.channel_ids.0"),
    ],
)
def test_bad_escalation_steps_are_422_and_create_no_rule(api, owner, steps, field):
    channel = create_channel(api, owner, "webhook", {"url": "http://127.0.0.1:9/hook"})["channel_id"]
    steps = [{**step, "channel_ids": [channel if c == "C" else c for c in step.get("channel_ids", [])]} if "channel_ids" in step else step for step in steps]
    response = api.post("/api/v2/routing-rules", json={"channel_id": channel, "escalation": steps}, headers=owner.admin)
    assert response.status_code == 422, response.get_json()
    assert field in [error["field"] for error in response.get_json()["errors"]]
    assert api.get("/api/v2/routing-rules", headers=owner.admin).get_json()["items"] == []


def test_another_tenants_channel_in_a_step_is_422_and_viewers_cannot_set_steps(api, owner, stack):
    other = stack.tenant()
    mine = create_channel(api, owner, "webhook", {"url": "http://127.0.0.1:9/hook"})["channel_id"]
    theirs = create_channel(api, other, "webhook", {"url": "http://127.0.0.1:9/hook"})["channel_id"]
    body = {"channel_id": mine, "escalation": [{"after_seconds": 60, "channel_ids": [theirs]}]}
    assert api.post("/api/v2/routing-rules", json=body, headers=owner.admin).status_code == 422
    body["escalation"][0]["channel_ids"] = [mine]
    assert api.post("/api/v2/routing-rules", json=body, headers=owner.viewer).status_code == 403
    rule = create_rule(api, owner, mine, escalation=[{"after_seconds": 60, "channel_ids": [mine]}])
    assert rule["escalation"] == [{"after_seconds": 60, "channel_ids": [mine]}]
    patched = api.patch(f"/api/v2/routing-rules/{rule['rule_id']}", json={"escalation": [{"after_seconds": 5, "channel_ids": [theirs]}]}, headers=owner.admin)
    assert patched.status_code == 422
    assert api.get(f"/api/v2/routing-rules/{rule['rule_id']}", headers=owner.admin).get_json()["escalation"] == rule["escalation"]


# The steps -----------------------------------------------------------------------------------


def test_an_alert_still_open_escalates_step_by_step_once_each(api, owner, receiver):
    first = hook(api, owner, receiver, "/first")
    second = hook(api, owner, receiver, "/second")
    third = hook(api, owner, receiver, "/third")
    create_rule(api, owner, first, escalation=[{"after_seconds": 2, "channel_ids": [second]}, {"after_seconds": 4, "channel_ids": [second, third]}])
    alert = post_alert(api, owner)
    wait_for(lambda: len(receiver.at("/third")) == 1, timeout=20, message="step 2 on the third channel")
    wait_for(lambda: len(escalated(api, owner, alert["alert_id"])) == 3 and all(s == "DELIVERED" for *_, s in escalated(api, owner, alert["alert_id"])))
    time.sleep(2.5)  # both beats have looked again, more than once
    assert escalated(api, owner, alert["alert_id"]) == [(1, second, "DELIVERED"), (2, second, "DELIVERED"), (2, third, "DELIVERED")]
    [step1, step2] = [r.json() for r in receiver.at("/second")]
    assert (step1["event_type"], step1["escalation_step"], step2["escalation_step"]) == ("ESCALATED", 1, 2)
    assert step1["ack_url"].startswith("http")
    triggered = datetime.fromisoformat(alert["triggered_at"])
    assert receiver.at("/second")[0].at >= (triggered + timedelta(seconds=2)).timestamp()
    assert [r.json()["event_type"] for r in receiver.at("/first")] == ["OPEN"]


def test_an_escalation_on_the_alerts_own_channel_follows_its_open(api, owner, receiver):
    only = hook(api, owner, receiver, "/only")
    create_rule(api, owner, only, escalation=[{"after_seconds": 1, "channel_ids": [only]}])
    post_alert(api, owner)
    wait_for(lambda: len(receiver.at("/only")) == 2, timeout=15)
    assert [(r.json()["event_type"], r.json()["escalation_step"]) for r in receiver.at("/only")] == [("OPEN", 0), ("ESCALATED", 1)]


@pytest.mark.parametrize("action", ["acknowledge", "close"])
def test_acknowledge_or_close_stops_the_escalation(api, owner, receiver, action):
    first = hook(api, owner, receiver, "/first")
    later = hook(api, owner, receiver, "/later")
    create_rule(api, owner, first, escalation=[{"after_seconds": 3, "channel_ids": [later]}])
    alert = post_alert(api, owner)
    assert api.post(f"/api/v2/alerts/{alert['alert_id']}/{action}", headers=owner.admin).status_code == 200
    time.sleep(5)
    assert receiver.at("/later") == []
    assert escalated(api, owner, alert["alert_id"]) == []


def test_a_throttled_open_never_escalates(api, owner, receiver):
    first = hook(api, owner, receiver, "/first")
    later = hook(api, owner, receiver, "/later")
    create_rule(api, owner, first, throttle_minutes=10, escalation=[{"after_seconds": 1, "channel_ids": [later]}])
    notified = post_alert(api, owner, fingerprint="a")
    throttled = post_alert(api, owner, fingerprint="b")
    assert throttled["jobs_queued"] == 0
    wait_for(lambda: escalated(api, owner, notified["alert_id"]), timeout=15)
    time.sleep(2)
    assert escalated(api, owner, throttled["alert_id"]) == []


def test_a_suppressed_open_never_escalates(api, owner, receiver):
    first = hook(api, owner, receiver, "/first")
    later = hook(api, owner, receiver, "/later")
    create_rule(api, owner, first, escalation=[{"after_seconds": 1, "channel_ids": [later]}])
    ends = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    api.post("/api/v2/silences", json={"name": "m", "ends_at": ends, "channel_ids": [first], "notify_on_end": False}, headers=owner.admin)
    alert = post_alert(api, owner)
    time.sleep(4)
    assert escalated(api, owner, alert["alert_id"]) == []
    assert receiver.at("/later") == []


def test_after_a_silence_released_the_open_the_steps_count_from_the_release(api, owner, receiver):
    first = hook(api, owner, receiver, "/first")
    later = hook(api, owner, receiver, "/later")
    rule = create_rule(api, owner, first, escalation=[{"after_seconds": 3, "channel_ids": [later]}])
    ends = datetime.now(timezone.utc) + timedelta(seconds=4)
    api.post("/api/v2/silences", json={"name": "m", "ends_at": ends.isoformat(), "channel_ids": [first]}, headers=owner.admin)
    alert = post_alert(api, owner)
    [released] = wait_for(lambda: receiver.at("/first"), timeout=15, message="the released OPEN")
    [step] = wait_for(lambda: receiver.at("/later"), timeout=15, message="the escalation")
    # Not 3 s after the trigger (inside the silence), but 3 s after the release.
    assert step.at >= released.at + 2.5
    assert step.at >= (ends + timedelta(seconds=3)).timestamp()
    [job] = [j for j in deliveries(api, owner, alert_id=alert["alert_id"]) if j["event_type"] == "ESCALATED"]
    assert (job["escalation_step"], job["rule_id"]) == (1, rule["rule_id"])


def test_beats_restarted_in_the_middle_of_an_escalation_send_each_step_once(api, owner, stack, receiver):
    first = hook(api, owner, receiver, "/first")
    later = hook(api, owner, receiver, "/later")
    create_rule(api, owner, first, escalation=[{"after_seconds": 1, "channel_ids": [later]}, {"after_seconds": 5, "channel_ids": [later]}])
    alert = post_alert(api, owner)
    wait_for(lambda: len(receiver.at("/later")) == 1, timeout=15, message="step 1")
    beats = [process for process in stack.processes if type(process).__name__ == "BeatProcess"]
    for beat in beats:
        beat.stop()
        beat.start()
    wait_for(lambda: len(receiver.at("/later")) == 2, timeout=20, message="step 2")
    time.sleep(2.5)
    assert [r.json()["escalation_step"] for r in receiver.at("/later")] == [1, 2]
    assert [(step, status) for step, _c, status in escalated(api, owner, alert["alert_id"])] == [(1, "DELIVERED"), (2, "DELIVERED")]


def test_pagerduty_gets_an_escalation_as_a_trigger_with_the_same_dedup_key(api, owner, pagerduty):
    pd = create_channel(api, owner, "pagerduty", {"integration_key": "R0123456789ABCDEF0123456789ABCDE"})["channel_id"]
    create_rule(api, owner, pd, escalation=[{"after_seconds": 1, "channel_ids": [pd]}])
    alert = post_alert(api, owner)
    key = f"pulse-alert-{alert['alert_id']}"

    def events():
        return [r.json() for r in pagerduty.at("/v2/enqueue") if r.json()["dedup_key"] == key]

    wait_for(lambda: len(events()) == 2, timeout=15)
    [opened, escalation] = events()
    assert (opened["event_action"], escalation["event_action"]) == ("trigger", "trigger")
    assert escalation["payload"]["summary"].startswith("[CRITICAL] Escalated (step 1): ")


def test_an_escalation_reaches_live_subscribers(api, owner, stack, receiver):
    web = WebServer("escalation", {"CELERY_BROKER_URL": stack.broker_url, "REDIS_URL": stack.broker_url})
    web.start()
    try:
        first = hook(api, owner, receiver, "/first")
        create_rule(api, owner, first, escalation=[{"after_seconds": 2, "channel_ids": [first]}])
        client = web.connect(owner.admin_token)
        client.subscribe_alerts()
        alert = requests.post(
            web.url + "/api/v2/alerts",
            json={"device_id": "pump-1", "alert_type": "overheat", "severity": 4, "message": "hot"},
            headers=owner.admin,
            timeout=10,
        ).json()
        message, _ = client.receive_until(lambda m: m["type"] == "alert" and m["event"] == "ESCALATED", timeout=20)
        assert message["alert"]["alert_id"] == alert["alert_id"]
        client.close()
    finally:
        web.stop()


# Renderings ----------------------------------------------------------------------------------


def test_chat_renderings_name_the_step_and_carry_the_acknowledge_link():
    payload = {
        "alert_id": 7, "alert_type": "overheat", "severity": 4, "severity_label": "CRITICAL", "device_id": "pump-1",
        "site_id": None, "tenant_id": "t", "message": "Pump hot", "details": {}, "triggered_at": None,
        "event_type": "ESCALATED", "job_id": 9, "escalation_step": 2, "ack_url": "https://pulse.example/ack/abc",
    }
    assert headline(payload) == "[CRITICAL] Escalated (step 2): Pump hot"
    slack = slack_message(payload)
    assert slack["text"] == "[CRITICAL] Escalated (step 2): Pump hot"
    assert "<https://pulse.example/ack/abc|Acknowledge>" in slack["attachments"][0]["text"]
    card = adaptive_card_message(payload)["attachments"][0]["content"]
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Acknowledge", "url": "https://pulse.example/ack/abc"}]
    assert "actions" not in adaptive_card_message({**payload, "event_type": "CLOSED", "ack_url": None})["attachments"][0]["content"]
