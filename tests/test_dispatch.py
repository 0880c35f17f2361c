"""Which jobs an alert event creates, in the same transaction as the alert (DESIGN §5 step 1).

Channels here point at a closed port: these tests look at the jobs, not at deliveries.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from app.models import NotificationJob
from tests.support import create_channel, create_rule, deliveries, post_alert

NOWHERE = {"url": "http://127.0.0.1:9/hook"}


def channel_with_rule(client, tenant, **filters):
    channel = create_channel(client, tenant, "webhook", NOWHERE)
    create_rule(client, tenant, channel["channel_id"], **filters)
    return channel


def jobs_by_event(client, tenant):
    return sorted((job["event_type"], job["status"], job["channel_id"]) for job in deliveries(client, tenant))


def test_each_event_creates_jobs_only_for_rules_that_deliver_on_it(client, tenant):
    everything = channel_with_rule(client, tenant, deliver_on=["OPEN", "ACKNOWLEDGED", "CLOSED"])
    open_only = channel_with_rule(client, tenant)
    alert = post_alert(client, tenant)
    assert alert["jobs_queued"] == 2
    assert client.post(f"/api/v2/alerts/{alert['alert_id']}/acknowledge", headers=tenant.admin).get_json()["jobs_queued"] == 1
    assert client.post(f"/api/v2/alerts/{alert['alert_id']}/close", headers=tenant.admin).get_json()["jobs_queued"] == 1
    events = {(job["event_type"], job["channel_id"]) for job in deliveries(client, tenant)}
    assert events == {
        ("OPEN", everything["channel_id"]),
        ("OPEN", open_only["channel_id"]),
        ("ACKNOWLEDGED", everything["channel_id"]),
        ("CLOSED", everything["channel_id"]),
    }


def test_non_matching_rules_create_no_job(client, tenant):
    channel_with_rule(client, tenant, min_severity=5)
    channel_with_rule(client, tenant, alert_type="offline")
    channel_with_rule(client, tenant, site_ids=["elsewhere"])
    channel_with_rule(client, tenant, device_prefixes=["valve-"])
    channel_with_rule(client, tenant, device_tag_key="zone", device_tag_val="south")
    assert post_alert(client, tenant, severity=4)["jobs_queued"] == 0
    assert deliveries(client, tenant) == []


def test_tag_filter_reads_device_tags_merged_with_the_alerts(client, tenant):
    client.post("/api/v2/devices", json={"device_id": "pump-1", "tags": {"zone": "north"}}, headers=tenant.admin)
    channel_with_rule(client, tenant, device_tag_key="zone", device_tag_val="north")
    assert post_alert(client, tenant, device_id="pump-1", alert_type="a")["jobs_queued"] == 1
    overridden = post_alert(client, tenant, device_id="pump-1", alert_type="b", details={"device_tags": {"zone": "south"}})
    assert overridden["jobs_queued"] == 0


def test_disabled_rules_and_channels_create_no_job_at_all(client, tenant):
    disabled_rule_channel = create_channel(client, tenant, "webhook", NOWHERE)
    create_rule(client, tenant, disabled_rule_channel["channel_id"], is_enabled=False)
    disabled_channel = create_channel(client, tenant, "webhook", NOWHERE)
    create_rule(client, tenant, disabled_channel["channel_id"])
    client.patch(f"/api/v2/channels/{disabled_channel['channel_id']}", json={"is_enabled": False}, headers=tenant.admin)
    assert post_alert(client, tenant)["jobs_queued"] == 0
    assert deliveries(client, tenant) == []


def test_two_rules_to_one_channel_make_one_job(client, tenant):
    channel = create_channel(client, tenant, "webhook", NOWHERE)
    create_rule(client, tenant, channel["channel_id"], priority=20)
    preferred = create_rule(client, tenant, channel["channel_id"], priority=10)
    assert post_alert(client, tenant)["jobs_queued"] == 1
    [job] = deliveries(client, tenant)
    assert job["rule_id"] == preferred["rule_id"]


def test_throttle_records_throttled_jobs_for_the_same_device_and_type(client, tenant):
    channel_with_rule(client, tenant, throttle_minutes=10, deliver_on=["OPEN", "ACKNOWLEDGED", "CLOSED"])
    first = post_alert(client, tenant, device_id="pump-1", alert_type="overheat")
    client.post(f"/api/v2/alerts/{first['alert_id']}/close", headers=tenant.admin)
    second = post_alert(client, tenant, device_id="pump-1", alert_type="overheat")
    assert second["alert_id"] != first["alert_id"] and second["jobs_queued"] == 0
    other_type = post_alert(client, tenant, device_id="pump-1", alert_type="vibration")
    assert other_type["jobs_queued"] == 1
    ack = client.post(f"/api/v2/alerts/{second['alert_id']}/acknowledge", headers=tenant.admin).get_json()
    close = client.post(f"/api/v2/alerts/{second['alert_id']}/close", headers=tenant.admin).get_json()
    assert ack["jobs_queued"] == 0 and close["jobs_queued"] == 0
    second_jobs = deliveries(client, tenant, alert_id=second["alert_id"])
    assert sorted((j["event_type"], j["status"]) for j in second_jobs) == [("ACKNOWLEDGED", "THROTTLED"), ("CLOSED", "THROTTLED"), ("OPEN", "THROTTLED")]


def test_throttle_window_expires(client, db, tenant):
    channel_with_rule(client, tenant, throttle_minutes=10)
    first = post_alert(client, tenant)
    client.post(f"/api/v2/alerts/{first['alert_id']}/close", headers=tenant.admin)
    with db.session(tenant.tenant_id) as session:
        job = session.scalars(select(NotificationJob).where(NotificationJob.alert_id == first["alert_id"])).one()
        session.execute(update(NotificationJob).where(NotificationJob.job_id == job.job_id).values(created_at=job.created_at - timedelta(minutes=11)))
    assert post_alert(client, tenant)["jobs_queued"] == 1


def test_a_throttled_job_does_not_extend_the_window(client, db, tenant):
    channel_with_rule(client, tenant, throttle_minutes=10)
    first = post_alert(client, tenant)
    client.post(f"/api/v2/alerts/{first['alert_id']}/close", headers=tenant.admin)
    second = post_alert(client, tenant)
    client.post(f"/api/v2/alerts/{second['alert_id']}/close", headers=tenant.admin)
    with db.session(tenant.tenant_id) as session:
        job = session.scalars(select(NotificationJob).where(NotificationJob.alert_id == first["alert_id"])).one()
        session.execute(update(NotificationJob).where(NotificationJob.job_id == job.job_id).values(created_at=job.created_at - timedelta(minutes=11)))
    # Only the throttled job is recent, and it does not count.
    assert post_alert(client, tenant)["jobs_queued"] == 1


def test_jobs_go_to_the_queue_of_their_severity(db, client, tenant):
    channel_with_rule(client, tenant)
    for device, severity in (("a", 5), ("b", 4), ("c", 3), ("d", 2), ("e", 0)):
        post_alert(client, tenant, device_id=device, severity=severity)
    with db.session(tenant.tenant_id) as session:
        rows = session.execute(select(NotificationJob.payload, NotificationJob.queue).where(NotificationJob.tenant_id == tenant.tenant_id)).all()
    queue = {payload["device_id"]: name for payload, name in rows}
    assert queue == {"a": "pulse.critical", "b": "pulse.critical", "c": "pulse.high", "d": "pulse.default", "e": "pulse.default"}


def test_a_job_is_never_created_twice_for_the_same_event(client, db, tenant, app):
    from app.alerts import create_jobs
    from app.models import Alert, utcnow

    channel_with_rule(client, tenant)
    alert = post_alert(client, tenant)
    with db.session(tenant.tenant_id) as session:
        again = create_jobs(session, session.get(Alert, alert["alert_id"]), "OPEN", None, utcnow())
    assert again == []
    assert len(deliveries(client, tenant)) == 1
