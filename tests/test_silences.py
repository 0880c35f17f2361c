"""Silences (DESIGN §6a): what they match, SUPPRESSED jobs, and what their end releases.

Real worker and beat processes on a broker database of this file's own deliver to a real
HTTP receiver; time-dependent behaviour uses silences a few seconds long.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.support import PrivateStack, create_channel, create_rule, deliveries, post_alert, wait_for


def iso(moment: datetime) -> str:
    return moment.isoformat()


def soon(seconds: float) -> str:
    return iso(datetime.now(timezone.utc) + timedelta(seconds=seconds))


@pytest.fixture(scope="module")
def stack(app):
    stack = PrivateStack(8)
    stack.worker()
    stack.beat()
    yield stack
    stack.close()


def silence(api, tenant, **fields) -> dict:
    body = {"name": "maintenance", "ends_at": soon(3600), **fields}
    response = api.post("/api/v2/silences", json=body, headers=tenant.admin)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def hooked(api, tenant, receiver, **rule):
    channel = create_channel(api, tenant, "webhook", {"url": receiver.url()})
    create_rule(api, tenant, channel["channel_id"], **rule)
    return channel


def statuses(api, tenant, **params):
    return sorted((job["event_type"], job["status"]) for job in deliveries(api, tenant, **params))


# The resource ----------------------------------------------------------------------------


def test_a_silence_is_created_with_its_defaults_and_read_back(api, owner):
    created = silence(api, owner, matchers={"site_ids": ["plant-3"], "max_severity": "high"}, comment="pump swap")
    assert created["active"] is True
    assert created["notify_on_end"] is True
    assert created["channel_ids"] is None
    assert created["recurrence"] is None
    assert created["matchers"] == {"site_ids": ["plant-3"], "max_severity": 3}
    assert created["created_by"] == owner.admin_email
    read = api.get(f"/api/v2/silences/{created['silence_id']}", headers=owner.admin).get_json()
    assert read == created


def test_active_filter_lists_only_silences_in_force_now(api, owner):
    now_on = silence(api, owner, name="now")
    later = silence(api, owner, name="later", starts_at=soon(3600), ends_at=soon(7200))
    active = api.get("/api/v2/silences", query_string={"active": "true"}, headers=owner.admin).get_json()["items"]
    assert [s["silence_id"] for s in active] == [now_on["silence_id"]]
    inactive = api.get("/api/v2/silences", query_string={"active": "false"}, headers=owner.admin).get_json()["items"]
    assert [s["silence_id"] for s in inactive] == [later["silence_id"]]
    assert later["active"] is False


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "no end"}, "ends_at"),
        ({"name": "backwards", "starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"}, "ends_at"),
        ({"name": "bad rule", "recurrence": {"rrule": "FREQ=SOMETIMES", "duration_seconds": 60, "timezone": "UTC"}}, "recurrence.rrule"),
        ({"name": "two rules", "recurrence": {"rrule": "FREQ=DAILY\nRRULE:FREQ=WEEKLY", "duration_seconds": 60, "timezone": "UTC"}}, "recurrence.rrule"),
        ({"name": "bad zone", "recurrence": {"rrule": "FREQ=DAILY", "duration_seconds": 60, "timezone": "Mars/Olympus"}}, "recurrence.timezone"),
        ({"name": "too often", "recurrence": {"rrule": "FREQ=SECONDLY", "duration_seconds": 1, "timezone": "UTC"}}, "recurrence.rrule"),
        ({"name": "x", "ends_at": "2099-01-01T00:00:00Z", "matchers": {"colour": "red"}}, "matchers.colour"),
        ({"name": "x", "ends_at": "2099-01-01T00:00:00Z", "matchers": {"max_severity": 9}}, "matchers.max_severity"),
    ],
)
def test_a_silence_that_does_not_parse_is_422_and_creates_nothing(api, owner, body, field):
    response = api.post("/api/v2/silences", json=body, headers=owner.admin)
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert field in [error["field"] for error in response.get_json()["errors"]]
    assert api.get("/api/v2/silences", headers=owner.admin).get_json()["items"] == []


def test_another_tenants_silence_is_404_and_its_channel_422(api, owner, stack):
    other = stack.tenant()
    theirs = silence(api, other)
    their_channel = create_channel(api, other, "webhook", {"url": "http://127.0.0.1:9/hook"})
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {"name": "mine"}} if method == "patch" else {}
        assert getattr(api, method)(f"/api/v2/silences/{theirs['silence_id']}", headers=owner.admin, **kwargs).status_code == 404
    response = api.post("/api/v2/silences", json={"name": "x", "ends_at": soon(60), "channel_ids": [their_channel["channel_id"]]}, headers=owner.admin)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "channel_ids.0"
    assert api.get("/api/v2/silences", headers=owner.admin).get_json()["items"] == []


def test_viewers_read_silences_but_cannot_change_them(api, owner):
    mine = silence(api, owner)
    assert api.get("/api/v2/silences", headers=owner.viewer).status_code == 200
    assert api.post("/api/v2/silences", json={"name": "x", "ends_at": soon(60)}, headers=owner.viewer).status_code == 403
    assert api.patch(f"/api/v2/silences/{mine['silence_id']}", json={"name": "y"}, headers=owner.viewer).status_code == 403
    assert api.delete(f"/api/v2/silences/{mine['silence_id']}", headers=owner.viewer).status_code == 403
    assert api.get(f"/api/v2/silences/{mine['silence_id']}", headers=owner.admin).get_json()["name"] == "maintenance"


# Suppression -------------------------------------------------------------------------------


def test_a_matching_open_is_suppressed_and_its_acknowledge_and_close_follow(api, owner, receiver):
    hooked(api, owner, receiver, deliver_on=["OPEN", "ACKNOWLEDGED", "CLOSED"])
    quiet = silence(api, owner, matchers={"device_prefixes": ["pump-"]}, notify_on_end=False)
    alert = post_alert(api, owner, device_id="pump-9")
    assert alert["jobs_queued"] == 0
    [job] = deliveries(api, owner)
    assert job["status"] == "SUPPRESSED"
    assert str(quiet["silence_id"]) in job["last_error"]
    assert api.post(f"/api/v2/alerts/{alert['alert_id']}/acknowledge", headers=owner.admin).get_json()["jobs_queued"] == 0
    assert api.post(f"/api/v2/alerts/{alert['alert_id']}/close", headers=owner.admin).get_json()["jobs_queued"] == 0
    assert statuses(api, owner) == [("ACKNOWLEDGED", "SUPPRESSED"), ("CLOSED", "SUPPRESSED"), ("OPEN", "SUPPRESSED")]
    time.sleep(2)
    assert receiver.at() == []


@pytest.mark.parametrize(
    "matchers, suppressed",
    [
        ({}, True),
        ({"max_severity": 3}, False),
        ({"max_severity": 4}, True),
        ({"min_severity": 5}, False),
        ({"alert_type": "overheat"}, True),
        ({"alert_type": "offline"}, False),
        ({"site_ids": ["plant-3"]}, True),
        ({"site_ids": ["elsewhere"]}, False),
        ({"device_tag_key": "zone", "device_tag_val": "north"}, True),
        ({"device_tag_key": "zone", "device_tag_val": "south"}, False),
    ],
)
def test_matchers_follow_the_rule_filters_semantics(api, owner, matchers, suppressed):
    channel = create_channel(api, owner, "webhook", {"url": "http://127.0.0.1:9/hook"})
    create_rule(api, owner, channel["channel_id"])
    silence(api, owner, matchers=matchers, notify_on_end=False)
    post_alert(api, owner, severity=4, site_id="plant-3", details={"device_tags": {"zone": "north"}})
    [job] = deliveries(api, owner)
    assert (job["status"] == "SUPPRESSED") is suppressed


def test_a_silence_on_one_channel_leaves_the_others_alone(api, owner, receiver):
    silenced = hooked(api, owner, receiver)
    loud = hooked(api, owner, receiver)
    silence(api, owner, channel_ids=[silenced["channel_id"]], notify_on_end=False)
    assert post_alert(api, owner)["jobs_queued"] == 1
    jobs = {job["channel_id"]: job["status"] for job in deliveries(api, owner)}
    assert jobs[silenced["channel_id"]] == "SUPPRESSED"
    wait_for(lambda: {job["channel_id"]: job["status"] for job in deliveries(api, owner)}[loud["channel_id"]] == "DELIVERED")


def test_events_of_an_alert_notified_before_the_silence_go_through(api, owner, receiver):
    hooked(api, owner, receiver, deliver_on=["OPEN", "CLOSED"])
    alert = post_alert(api, owner)
    wait_for(lambda: len(receiver.at()) == 1, message="the OPEN")
    silence(api, owner)
    assert api.post(f"/api/v2/alerts/{alert['alert_id']}/close", headers=owner.admin).get_json()["jobs_queued"] == 1
    wait_for(lambda: [r.json()["event_type"] for r in receiver.at()] == ["OPEN", "CLOSED"], message="the CLOSE")


# The end of a silence ----------------------------------------------------------------------


def test_when_a_silence_ends_the_alerts_still_open_are_sent_and_the_others_are_not(api, owner, receiver):
    hooked(api, owner, receiver, deliver_on=["OPEN", "ACKNOWLEDGED"])
    silence(api, owner, ends_at=soon(3))
    still_open = post_alert(api, owner, device_id="pump-1")
    handled = post_alert(api, owner, device_id="pump-2")
    api.post(f"/api/v2/alerts/{handled['alert_id']}/acknowledge", headers=owner.admin)
    # Ends in 3 s; the beat sweeps every second: sent within two sweep intervals after that.
    sent = wait_for(lambda: receiver.at(), timeout=15, message="the released OPEN")
    assert [(r.json()["alert_id"], r.json()["event_type"]) for r in sent] == [(still_open["alert_id"], "OPEN")]
    time.sleep(2)
    assert len(receiver.at()) == 1
    assert statuses(api, owner, alert_id=handled["alert_id"]) == [("ACKNOWLEDGED", "SUPPRESSED"), ("OPEN", "SUPPRESSED")]


def test_without_notify_on_end_nothing_is_sent_when_it_ends(api, owner, receiver):
    hooked(api, owner, receiver)
    silence(api, owner, ends_at=soon(2), notify_on_end=False)
    post_alert(api, owner)
    time.sleep(5)
    assert receiver.at() == []
    assert statuses(api, owner) == [("OPEN", "SUPPRESSED")]


def test_deleting_a_silence_releases_what_it_held_at_once(api, owner, receiver):
    hooked(api, owner, receiver)
    held = silence(api, owner)
    alert = post_alert(api, owner)
    assert api.delete(f"/api/v2/silences/{held['silence_id']}", headers=owner.admin).status_code == 204
    [sent] = wait_for(lambda: receiver.at(), timeout=10, message="the released OPEN")
    assert sent.json()["alert_id"] == alert["alert_id"]
    assert api.get(f"/api/v2/silences/{held['silence_id']}", headers=owner.admin).status_code == 404


def test_an_ended_silence_leaves_a_job_to_another_silence_that_still_holds(api, owner, receiver):
    hooked(api, owner, receiver)
    first = silence(api, owner, name="first")
    silence(api, owner, name="second", notify_on_end=True)
    post_alert(api, owner)
    api.delete(f"/api/v2/silences/{first['silence_id']}", headers=owner.admin)
    time.sleep(3)
    assert receiver.at() == []
    [job] = deliveries(api, owner)
    assert job["status"] == "SUPPRESSED"


# The live feed -------------------------------------------------------------------------------


def test_silence_changes_reach_live_subscribers_of_their_tenant_only(stack, owner):
    import requests

    from tests.webserver import WebServer

    web = WebServer("silences", {"CELERY_BROKER_URL": stack.broker_url, "REDIS_URL": stack.broker_url})
    web.start()
    try:
        other = stack.tenant()
        watcher, bystander = web.connect(owner.admin_token), web.connect(other.admin_token)
        watcher.subscribe_alerts()
        bystander.subscribe_alerts()
        url = web.url + "/api/v2/silences"
        created = requests.post(url, json={"name": "live", "ends_at": soon(600)}, headers=owner.admin, timeout=10).json()
        message, _ = watcher.receive_until(lambda m: m["type"] == "silences")
        assert (message["action"], message["silence"]["silence_id"], message["silence"]["active"]) == ("created", created["silence_id"], True)
        requests.delete(f"{url}/{created['silence_id']}", headers=owner.admin, timeout=10)
        message, _ = watcher.receive_until(lambda m: m["type"] == "silences")
        assert (message["action"], message["silence"]["silence_id"]) == ("deleted", created["silence_id"])
        # Published after the other tenant's changes: had those reached it, they would come first.
        requests.post(url, json={"name": "theirs", "ends_at": soon(600)}, headers=other.admin, timeout=10)
        message, skipped = bystander.receive_until(lambda m: m["type"] == "silences")
        assert message["silence"]["name"] == "theirs"
        assert [m for m in skipped if m["type"] == "silences"] == []
        watcher.close()
        bystander.close()
    finally:
        web.stop()
