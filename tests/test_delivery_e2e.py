"""End to end: channels and rules through the API, alerts in, deliveries out through a real worker."""

from __future__ import annotations

import hashlib
import hmac

from standardwebhooks import Webhook

from tests.support import (
    create_channel,
    create_rule,
    post_alert,
    settled,
    wait_for,
)


def test_matching_alert_is_delivered_once_with_signed_payload(client, tenant, worker, receiver):
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    channel = create_channel(client, tenant, "webhook", {"url": receiver.url("/hook"), "secret": secret, "headers": {"X-Team": "ops"}})
    create_rule(client, tenant, channel["channel_id"], min_severity=3)

    alert = post_alert(client, tenant, severity=4, details={"temperature": 97.5})
    assert alert["jobs_queued"] == 1

    jobs = wait_for(lambda: settled(client, tenant, 1), message="the delivery to settle")
    assert [job["status"] for job in jobs] == ["DELIVERED"]
    [request] = receiver.at("/hook")
    body = request.json()
    # An OPEN carries its channel's acknowledge link (tests/test_ack_links.py checks it works).
    assert body.pop("ack_url").startswith(client.application.extensions["pulse"].settings.public_url + "/ack/")
    assert body == {
        "alert_id": alert["alert_id"],
        "alert_type": "overheat",
        "severity": 4,
        "severity_label": "CRITICAL",
        "device_id": "pump-1",
        "site_id": None,
        "tenant_id": tenant.tenant_id,
        "message": "Pump temperature high",
        "details": {"temperature": 97.5},
        "triggered_at": alert["triggered_at"],
        "event_type": "OPEN",
        "job_id": jobs[0]["job_id"],
        "escalation_step": 0,
    }
    assert request.headers["webhook-id"] == str(jobs[0]["job_id"])
    assert request.headers["X-Team"] == "ops"
    Webhook(secret).verify(request.body, request.headers)
    expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Signature-SHA256"] == expected
