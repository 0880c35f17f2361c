"""POST /channels/{id}/test sends now and gives a real answer; secrets never reach a log."""

from __future__ import annotations

from tests.support import create_channel, create_rule, post_alert, settled, wait_for


def test_a_working_webhook_answers_200_with_duration(client, tenant, receiver):
    channel = create_channel(client, tenant, "webhook", {"url": receiver.url(), "secret": "test-secret"})
    response = client.post(f"/api/v2/channels/{channel['channel_id']}/test", headers=tenant.admin)
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok" and body["duration_ms"] >= 0
    [request] = receiver.at()
    payload = request.json()
    assert payload["event_type"] == "TEST" and payload["job_id"] is None and payload["tenant_id"] == tenant.tenant_id
    assert request.headers["webhook-id"].startswith("test-")
    assert request.headers["webhook-id"] == body["message_id"]


def test_a_failing_webhook_answers_502_with_what_the_receiver_said(client, tenant, receiver):
    receiver.default = (410, {}, b"this hook was removed")
    channel = create_channel(client, tenant, "webhook", {"url": receiver.url()})
    response = client.post(f"/api/v2/channels/{channel['channel_id']}/test", headers=tenant.admin)
    assert response.status_code == 502
    assert response.mimetype == "application/problem+json"
    assert "410" in response.get_json()["detail"] and "this hook was removed" in response.get_json()["detail"]


def test_an_unreachable_webhook_answers_502(client, tenant):
    channel = create_channel(client, tenant, "webhook", {"url": "http://127.0.0.1:9/hook"})
    response = client.post(f"/api/v2/channels/{channel['channel_id']}/test", headers=tenant.admin)
    assert response.status_code == 502 and "unreachable" in response.get_json()["detail"]


def test_a_test_send_creates_no_job(client, tenant, receiver):
    channel = create_channel(client, tenant, "webhook", {"url": receiver.url()})
    client.post(f"/api/v2/channels/{channel['channel_id']}/test", headers=tenant.admin)
    assert client.get("/api/v2/deliveries", headers=tenant.admin).get_json()["items"] == []


def test_secrets_never_reach_the_delivery_log_or_the_worker_log(client, tenant, worker, receiver):
    secret_path = "/T000/B000/XXXXSECRETPATHXXXX"
    receiver.default = (404, {}, f"no such hook {secret_path}".encode())
    channel = create_channel(client, tenant, "slack", {"webhook_url": receiver.url(secret_path)})
    create_rule(client, tenant, channel["channel_id"])
    post_alert(client, tenant)
    [job] = wait_for(lambda: settled(client, tenant, 1), message="the slack job to fail")
    assert job["status"] == "FAILED"
    detail = client.get(f"/api/v2/deliveries/{job['job_id']}", headers=tenant.admin).get_data(as_text=True)
    test = client.post(f"/api/v2/channels/{channel['channel_id']}/test", headers=tenant.admin).get_data(as_text=True)
    for text in (detail, test, worker.log()):
        assert "XXXXSECRETPATHXXXX" not in text
    assert "404" in job["last_error"]
