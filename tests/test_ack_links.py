"""Acknowledge links (DESIGN §6a): `ack_url` in OPEN and ESCALATED payloads, GET/POST /ack/<token>.

The links come out of real deliveries to a real receiver; the pages are asked for like a
browser would (GET shows, POST acknowledges).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest
from itsdangerous import URLSafeSerializer

from app.acklinks import AckLinks
from app.channels.base import Notification
from app.channels.email import EmailConfig, build_message
from tests.support import PrivateStack, create_channel, create_rule, deliveries, post_alert, wait_for

PUBLIC_URL = "https://pulse.example.test"


@pytest.fixture(scope="module")
def stack(app):
    stack = PrivateStack(9, {"PUBLIC_URL": PUBLIC_URL})
    stack.worker(PUBLIC_URL=PUBLIC_URL)
    yield stack
    stack.close()


def linked_alert(api, tenant, receiver, **rule):
    """An alert whose OPEN reached the receiver: (alert, channel_id, the delivered OPEN payload)."""
    channel_id = create_channel(api, tenant, "webhook", {"url": receiver.url()})["channel_id"]
    create_rule(api, tenant, channel_id, deliver_on=["OPEN", "ACKNOWLEDGED", "CLOSED"], **rule)
    alert = post_alert(api, tenant)
    [opened] = wait_for(lambda: receiver.at(), timeout=15, message="the OPEN")
    return alert, channel_id, opened.json()


def path_of(url: str) -> str:
    assert url.startswith(PUBLIC_URL + "/ack/"), url
    return url[len(PUBLIC_URL):]


def read_alert(api, tenant, alert_id):
    return api.get(f"/api/v2/alerts/{alert_id}", headers=tenant.admin).get_json()


def test_the_open_carries_a_link_on_public_url_and_the_other_events_none(api, owner, receiver):
    alert, _channel, opened = linked_alert(api, owner, receiver)
    path_of(opened["ack_url"])
    api.post(f"/api/v2/alerts/{alert['alert_id']}/close", headers=owner.admin)
    wait_for(lambda: len(receiver.at()) == 2, timeout=15)
    assert receiver.at()[1].json()["ack_url"] is None
    # The API's view of a delivery hands out no link: viewers read deliveries.
    assert all(job["payload"]["ack_url"] is None for job in deliveries(api, owner))


def test_get_shows_the_alert_and_changes_nothing(api, owner, receiver):
    alert, _channel, opened = linked_alert(api, owner, receiver)
    page = api.get(path_of(opened["ack_url"]))
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    for shown in ("CRITICAL", "pump-1", "overheat", "Pump temperature high", "OPEN", "Acknowledge"):
        assert shown in text
    assert read_alert(api, owner, alert["alert_id"])["status"] == "OPEN"
    assert len(deliveries(api, owner)) == 1


def test_post_acknowledges_as_the_link_with_the_usual_jobs_and_repeating_changes_nothing(api, owner, receiver):
    alert, channel_id, opened = linked_alert(api, owner, receiver)
    answer = api.post(path_of(opened["ack_url"]))
    assert answer.status_code == 200
    assert "Acknowledged" in answer.get_data(as_text=True)
    acknowledged = read_alert(api, owner, alert["alert_id"])
    assert (acknowledged["status"], acknowledged["acknowledged_by"]) == ("ACKNOWLEDGED", f"link:{channel_id}")
    wait_for(lambda: [r.json()["event_type"] for r in receiver.at()] == ["OPEN", "ACKNOWLEDGED"], timeout=15)
    again = api.post(path_of(opened["ack_url"]))
    assert again.status_code == 200
    assert read_alert(api, owner, alert["alert_id"])["acknowledged_at"] == acknowledged["acknowledged_at"]
    assert len(deliveries(api, owner)) == 2


def test_a_closed_alert_answers_409_and_stays_closed(api, owner, receiver):
    alert, _channel, opened = linked_alert(api, owner, receiver)
    api.post(f"/api/v2/alerts/{alert['alert_id']}/close", headers=owner.admin)
    answer = api.post(path_of(opened["ack_url"]))
    assert answer.status_code == 409
    assert "closed" in answer.get_data(as_text=True)
    closed = read_alert(api, owner, alert["alert_id"])
    assert (closed["status"], closed["acknowledged_by"], closed["closed_by"]) == ("CLOSED", None, owner.admin_email)


def forged_tokens(opened: dict, tenant) -> list[str]:
    token = path_of(opened["ack_url"]).removeprefix("/ack/")
    body, _, signature = token.rpartition(".")
    wrong_key = AckLinks("not-the-secret", PUBLIC_URL)
    expired = AckLinks(os.environ["SECRET_KEY"], PUBLIC_URL).token(
        tenant.tenant_id, opened["alert_id"], 1, datetime.now(timezone.utc) - timedelta(days=7, seconds=1)
    )
    return [
        body + "." + ("A" if signature[0] != "A" else "B") + signature[1:],
        wrong_key.token(tenant.tenant_id, opened["alert_id"], 1, datetime.now(timezone.utc)),
        expired,
        tenant.admin_token,  # an API bearer token is no acknowledge link
        "garbage",
    ]


def test_a_forged_or_expired_link_is_403_and_changes_nothing(api, owner, receiver):
    alert, _channel, opened = linked_alert(api, owner, receiver)
    for token in forged_tokens(opened, owner):
        assert api.get(f"/ack/{token}").status_code == 403, token
        assert api.post(f"/ack/{token}").status_code == 403, token
    assert read_alert(api, owner, alert["alert_id"])["status"] == "OPEN"
    assert len(deliveries(api, owner)) == 1


def test_a_link_is_no_api_token(api, owner, receiver):
    _alert, _channel, opened = linked_alert(api, owner, receiver)
    token = path_of(opened["ack_url"]).removeprefix("/ack/")
    assert api.get("/api/v2/alerts", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_link_acknowledges_only_its_own_tenants_alert(api, owner, stack, receiver):
    other = stack.tenant()
    theirs = post_alert(api, other)
    _alert, _channel, opened = linked_alert(api, owner, receiver)
    token = path_of(opened["ack_url"]).removeprefix("/ack/")
    claims = URLSafeSerializer("any").load_payload(token.rpartition(".")[0].encode())
    assert claims["t"] == owner.tenant_id
    # The same signature over claims naming the other tenant's alert.
    retargeted = URLSafeSerializer("any").dump_payload({**claims, "t": other.tenant_id, "a": theirs["alert_id"]}).decode()
    forged = retargeted + "." + token.rpartition(".")[2]
    assert api.post(f"/ack/{forged}").status_code == 403
    assert read_alert(api, other, theirs["alert_id"])["status"] == "OPEN"


def test_viewers_cannot_acknowledge_through_the_api_and_admins_are_named(api, owner):
    alert = post_alert(api, owner)
    assert api.post(f"/api/v2/alerts/{alert['alert_id']}/acknowledge", headers=owner.viewer).status_code == 403
    assert read_alert(api, owner, alert["alert_id"])["acknowledged_by"] is None
    api.post(f"/api/v2/alerts/{alert['alert_id']}/acknowledge", headers=owner.admin)
    assert read_alert(api, owner, alert["alert_id"])["acknowledged_by"] == owner.admin_email


def test_the_default_email_shows_the_link():
    config = EmailConfig.model_validate(
        {"smtp": {"host": "mail.example.test", "from": "pulse@example.test"}, "recipients": {"to": ["ops@example.test"]}}
    )
    payload = {
        "alert_id": 7, "alert_type": "overheat", "severity": 4, "severity_label": "CRITICAL", "device_id": "pump-1",
        "site_id": None, "tenant_id": "t", "message": "Pump hot", "details": {}, "triggered_at": None,
        "event_type": "ESCALATED", "job_id": 9, "escalation_step": 2, "ack_url": PUBLIC_URL + "/ack/abc",
    }
    message = build_message(config, Notification(payload=payload, message_id="9"))
    assert "escalated, step 2" in message["Subject"]
    body = message.get_content()
    assert "ESCALATED (step 2): Pump hot" in body
    assert f"Acknowledge: {PUBLIC_URL}/ack/abc" in body
    closed = build_message(config, Notification(payload={**payload, "event_type": "CLOSED", "ack_url": None}, message_id="9"))
    assert "Acknowledge" not in closed.get_content()
