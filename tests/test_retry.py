"""Retries, dead-lettering and replay, through the real worker (DELIVERY_MAX_ATTEMPTS=3 in tests)."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.support import create_channel, create_rule, deliveries, post_alert, settled, wait_for


def delivery(client, tenant, job_id):
    response = client.get(f"/api/v2/deliveries/{job_id}", headers=tenant.admin)
    assert response.status_code == 200
    return response.get_json()


def webhook_alert(client, tenant, receiver, **alert):
    channel = create_channel(client, tenant, "webhook", {"url": receiver.url()})
    create_rule(client, tenant, channel["channel_id"])
    post_alert(client, tenant, **alert)
    return channel


def test_two_503s_then_success_is_one_delivery_and_three_log_rows(client, tenant, worker, receiver):
    receiver.script("/hook", [(503, {}, b"busy"), (503, {}, b"busy")])
    webhook_alert(client, tenant, receiver)
    [job] = wait_for(lambda: settled(client, tenant, 1), message="the job to settle")
    assert job["status"] == "DELIVERED" and job["attempts"] == 3
    log = delivery(client, tenant, job["job_id"])["log"]
    assert [(row["attempt"], row["success"], row["status_code"]) for row in log] == [(1, False, 503), (2, False, 503), (3, True, 200)]
    assert "503" in log[0]["error"]
    requests = receiver.at()
    assert len(requests) == 3
    # Every retry carries the same id, so the receiver can drop repeats.
    assert {r.headers["webhook-id"] for r in requests} == {str(job["job_id"])}
    # The delays themselves are the policy's (test_retry_policy.py), not timed here.


def test_a_400_fails_permanently_after_one_attempt(client, tenant, worker, receiver):
    receiver.script("/hook", [(400, {}, b"bad payload")])
    webhook_alert(client, tenant, receiver)
    [job] = wait_for(lambda: settled(client, tenant, 1), message="the job to settle")
    assert job["status"] == "FAILED" and job["attempts"] == 1
    assert "400" in job["last_error"]
    [row] = delivery(client, tenant, job["job_id"])["log"]
    assert row["success"] is False and row["status_code"] == 400


def test_retry_after_is_honoured(client, tenant, worker, receiver):
    receiver.script("/hook", [(429, {"Retry-After": "3"}, b"slow down")])
    webhook_alert(client, tenant, receiver)

    def retrying():
        jobs = [job for job in deliveries(client, tenant) if job["status"] == "RETRYING"]
        return jobs and delivery(client, tenant, jobs[0]["job_id"])

    waiting = wait_for(retrying, message="the job to wait for its retry")
    # The schedule the worker recorded, on the database's clock: the backoff alone would
    # have been about 1 s; the receiver asked for 3.
    failed_at = datetime.fromisoformat(waiting["log"][0]["created_at"])
    assert datetime.fromisoformat(waiting["next_attempt_at"]) - failed_at >= timedelta(seconds=2.9)
    [job] = wait_for(lambda: settled(client, tenant, 1), message="the job to settle")
    assert job["status"] == "DELIVERED" and len(receiver.at()) == 2


def test_always_failing_receiver_is_dead_lettered_then_replay_delivers(client, tenant, worker, receiver):
    receiver.default = (500, {}, b"down")
    channel = webhook_alert(client, tenant, receiver)
    [job] = wait_for(lambda: settled(client, tenant, 1), message="the job to be dead-lettered")
    assert job["status"] == "FAILED" and job["attempts"] == 3
    dead = client.get("/api/v2/deliveries", query_string={"status": "FAILED"}, headers=tenant.admin).get_json()["items"]
    assert [d["job_id"] for d in dead] == [job["job_id"]]
    assert len(receiver.at()) == 3

    receiver.default = (200, {}, b"ok")
    response = client.post(f"/api/v2/deliveries/{job['job_id']}/replay", headers=tenant.admin)
    assert response.status_code == 202 and response.get_json()["status"] == "PENDING"
    wait_for(lambda: delivery(client, tenant, job["job_id"])["status"] == "DELIVERED", message="the replay to deliver")
    replayed = delivery(client, tenant, job["job_id"])
    assert replayed["attempts"] == 4
    assert [row["attempt"] for row in replayed["log"]] == [1, 2, 3, 4]
    assert replayed["log"][-1]["success"] is True
    assert len(receiver.at()) == 4
    assert client.get("/api/v2/deliveries", query_string={"status": "FAILED", "channel_id": channel["channel_id"]}, headers=tenant.admin).get_json()["items"] == []


def test_replaying_a_delivered_job_is_409(client, tenant, worker, receiver):
    webhook_alert(client, tenant, receiver)
    [job] = wait_for(lambda: settled(client, tenant, 1), message="the job to settle")
    response = client.post(f"/api/v2/deliveries/{job['job_id']}/replay", headers=tenant.admin)
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"


def test_bulk_replay_by_channel_with_dry_run(client, tenant, worker, receiver):
    receiver.default = (404, {}, b"gone")
    channel = create_channel(client, tenant, "webhook", {"url": receiver.url()})
    create_rule(client, tenant, channel["channel_id"])
    for device in ("pump-1", "pump-2"):
        post_alert(client, tenant, device_id=device)
    wait_for(lambda: settled(client, tenant, 2), message="both jobs to fail")

    dry = client.post("/api/v2/deliveries/replay", json={"channel_id": channel["channel_id"], "dry_run": True}, headers=tenant.admin)
    assert dry.status_code == 200 and dry.get_json() == {"would_replay": 2}
    future = client.post("/api/v2/deliveries/replay", json={"since": "2999-01-01T00:00:00Z", "dry_run": True}, headers=tenant.admin)
    assert future.get_json() == {"would_replay": 0}

    receiver.default = (200, {}, b"ok")
    response = client.post("/api/v2/deliveries/replay", json={"channel_id": channel["channel_id"]}, headers=tenant.admin)
    assert response.status_code == 202 and response.get_json() == {"replayed": 2}
    jobs = wait_for(lambda: (lambda s: s if s and all(j["status"] == "DELIVERED" for j in s) else None)(settled(client, tenant, 2)), message="replays to deliver")
    assert len(jobs) == 2
