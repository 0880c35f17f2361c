"""Deleting a channel keeps its history (soft delete): hidden and disabled, its deliveries readable."""

from __future__ import annotations

from sqlalchemy import select

from app.models import NotificationChannel
from tests.support import create_channel, create_rule, deliveries, post_alert, settled, wait_for


def webhook(client, tenant, receiver) -> dict:
    return create_channel(client, tenant, "webhook", {"url": receiver.url()})


def test_a_deleted_channel_is_hidden_and_its_deliveries_stay_readable(client, tenant, worker, receiver):
    channel = webhook(client, tenant, receiver)
    channel_id = channel["channel_id"]
    rule = create_rule(client, tenant, channel_id)
    post_alert(client, tenant)
    [job] = wait_for(lambda: settled(client, tenant, 1), message="the delivery")
    assert job["status"] == "DELIVERED"

    assert client.delete(f"/api/v2/channels/{channel_id}", headers=tenant.admin).status_code == 204

    listed = client.get("/api/v2/channels", headers=tenant.admin).get_json()["items"]
    assert channel_id not in {item["channel_id"] for item in listed}
    for method, path in [("get", ""), ("patch", ""), ("delete", ""), ("post", "/test")]:
        response = getattr(client, method)(f"/api/v2/channels/{channel_id}{path}", json={"name": "x"} if method == "patch" else None, headers=tenant.admin)
        assert response.status_code == 404, (method, path)
    assert client.get(f"/api/v2/routing-rules/{rule['rule_id']}", headers=tenant.admin).status_code == 404

    [kept] = deliveries(client, tenant, channel_id=channel_id)
    assert kept["job_id"] == job["job_id"] and kept["status"] == "DELIVERED"
    detail = client.get(f"/api/v2/deliveries/{job['job_id']}", headers=tenant.admin).get_json()
    assert [entry["success"] for entry in detail["log"]] == [True]


def test_no_new_job_goes_to_a_deleted_channel(client, tenant, receiver):
    kept, deleted = webhook(client, tenant, receiver), webhook(client, tenant, receiver)
    create_rule(client, tenant, kept["channel_id"])
    create_rule(client, tenant, deleted["channel_id"])
    assert client.delete(f"/api/v2/channels/{deleted['channel_id']}", headers=tenant.admin).status_code == 204
    assert post_alert(client, tenant)["jobs_queued"] == 1
    assert {job["channel_id"] for job in deliveries(client, tenant)} == {kept["channel_id"]}


def test_a_rule_cannot_name_a_deleted_channel(client, tenant, receiver):
    deleted, other = webhook(client, tenant, receiver), webhook(client, tenant, receiver)
    client.delete(f"/api/v2/channels/{deleted['channel_id']}", headers=tenant.admin)
    created = client.post("/api/v2/routing-rules", json={"channel_id": deleted["channel_id"]}, headers=tenant.admin)
    assert created.status_code == 422 and created.get_json()["errors"][0]["field"] == "channel_id"
    rule = create_rule(client, tenant, other["channel_id"])
    moved = client.patch(f"/api/v2/routing-rules/{rule['rule_id']}", json={"channel_id": deleted["channel_id"]}, headers=tenant.admin)
    assert moved.status_code == 422


def test_dead_letters_of_a_deleted_channel_stay_readable_but_cannot_be_replayed(client, tenant, worker, receiver):
    receiver.default = (400, {}, b"bad request")  # permanent: dead-lettered at once
    channel = webhook(client, tenant, receiver)
    create_rule(client, tenant, channel["channel_id"])
    post_alert(client, tenant)
    [job] = wait_for(lambda: settled(client, tenant, 1), message="the dead letter")
    assert job["status"] == "FAILED"
    assert client.delete(f"/api/v2/channels/{channel['channel_id']}", headers=tenant.admin).status_code == 204

    assert [dead["job_id"] for dead in deliveries(client, tenant, status="FAILED")] == [job["job_id"]]
    replay = client.post(f"/api/v2/deliveries/{job['job_id']}/replay", headers=tenant.admin)
    assert replay.status_code == 409 and "deleted" in replay.get_json()["detail"]
    bulk = client.post("/api/v2/deliveries/replay", json={}, headers=tenant.admin)
    assert bulk.status_code == 202 and bulk.get_json() == {"replayed": 0}
    assert deliveries(client, tenant)[0]["status"] == "FAILED"


def test_a_job_waiting_for_a_deleted_channel_fails_saying_so_and_sends_nothing_more(client, tenant, worker, receiver):
    receiver.default = (503, {}, b"try later")  # transient: the job waits for its retry
    channel = webhook(client, tenant, receiver)
    create_rule(client, tenant, channel["channel_id"])
    post_alert(client, tenant)
    wait_for(lambda: deliveries(client, tenant)[0]["status"] == "RETRYING", message="the first failed attempt")
    assert client.delete(f"/api/v2/channels/{channel['channel_id']}", headers=tenant.admin).status_code == 204
    [job] = wait_for(lambda: settled(client, tenant, 1), message="the job to settle")
    assert job["status"] == "FAILED" and "deleted" in job["last_error"]
    assert len(receiver.at()) == 1


def test_the_row_outlives_the_delete_marked_and_disabled(client, db, tenant, receiver):
    channel = webhook(client, tenant, receiver)
    client.delete(f"/api/v2/channels/{channel['channel_id']}", headers=tenant.admin)
    with db.session(tenant.tenant_id) as session:
        row = session.scalar(select(NotificationChannel).where(NotificationChannel.channel_id == channel["channel_id"]))
        assert row.deleted_at is not None and row.is_enabled is False


def test_another_tenant_cannot_delete_the_channel(client, tenant, other_tenant, receiver):
    channel = webhook(client, tenant, receiver)
    assert client.delete(f"/api/v2/channels/{channel['channel_id']}", headers=other_tenant.admin).status_code == 404
    assert client.get(f"/api/v2/channels/{channel['channel_id']}", headers=tenant.admin).status_code == 200
