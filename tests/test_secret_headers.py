"""A webhook's `secret_headers` (DESIGN §7): sent like `headers`, never shown, never leaked.

Every value is write-only: answered as the mask to admins and viewers alike, stored only
encrypted, kept when the mask is sent back in an update, and blanked out of errors, the
delivery log and the worker's log when a receiver quotes it back.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.support import create_channel, create_rule, post_alert, settled, wait_for

TOKEN = "Bearer sk-live-4f7a9c2e8b1d6f3a"
API_KEY = "k3y-0f-the-receiver-91b2"
BASIC = "Basic " + base64.b64encode(b"pulse:correct-horse-battery").decode()
MASK = "********"


def webhook(client, tenant, receiver, **config) -> dict:
    return create_channel(client, tenant, "webhook", {"url": receiver.url(), **config})


def test_secret_headers_are_answered_masked_to_admins_and_viewers(client, tenant, receiver):
    channel = webhook(client, tenant, receiver, headers={"X-Team": "ops"}, secret_headers={"Authorization": TOKEN})

    assert channel["config"]["headers"] == {"X-Team": "ops"}
    assert channel["config"]["secret_headers"] == {"Authorization": MASK}
    for response in (
        client.get(f"/api/v2/channels/{channel['channel_id']}", headers=tenant.admin),
        client.get(f"/api/v2/channels/{channel['channel_id']}", headers=tenant.viewer),
        client.get("/api/v2/channels", headers=tenant.viewer),
    ):
        assert response.status_code == 200
        assert "sk-live" not in response.get_data(as_text=True)
        assert MASK in response.get_data(as_text=True)


def test_secret_headers_are_stored_only_encrypted(client, db, tenant, receiver):
    from app.models import NotificationChannel

    channel = webhook(client, tenant, receiver, secret_headers={"Authorization": TOKEN})

    with db.session(tenant.tenant_id) as session:
        stored = session.get(NotificationChannel, channel["channel_id"])
        assert "sk-live" not in json.dumps(stored.config)
        assert b"sk-live" not in bytes(stored.encrypted_secrets)


def test_secret_headers_are_sent_like_headers(client, tenant, receiver):
    channel = webhook(client, tenant, receiver, headers={"X-Team": "ops"}, secret_headers={"Authorization": TOKEN, "X-Api-Key": API_KEY})

    response = client.post(f"/api/v2/channels/{channel['channel_id']}/test", headers=tenant.admin)

    assert response.status_code == 200
    [request] = receiver.at()
    assert (request.headers["Authorization"], request.headers["X-Api-Key"], request.headers["X-Team"]) == (TOKEN, API_KEY, "ops")


def test_a_worker_delivery_carries_the_secret_headers(client, tenant, worker, receiver):
    channel = webhook(client, tenant, receiver, secret_headers={"Authorization": TOKEN})
    create_rule(client, tenant, channel["channel_id"])

    post_alert(client, tenant)
    [job] = wait_for(lambda: settled(client, tenant, 1), message="the job to be delivered")

    assert job["status"] == "DELIVERED"
    assert receiver.at()[0].headers["Authorization"] == TOKEN


def patch(client, tenant, channel: dict, config: dict) -> dict:
    response = client.patch(f"/api/v2/channels/{channel['channel_id']}", json={"config": config}, headers=tenant.admin)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def sent_headers(client, tenant, receiver, channel: dict) -> dict:
    """The headers the receiver gets from a test send now."""
    assert client.post(f"/api/v2/channels/{channel['channel_id']}/test", headers=tenant.admin).status_code == 200
    return receiver.at()[-1].headers


def test_the_mask_sent_back_keeps_each_stored_value(client, tenant, receiver):
    channel = webhook(client, tenant, receiver, secret_headers={"Authorization": TOKEN, "X-Api-Key": API_KEY})

    echoed = patch(client, tenant, channel, channel["config"])
    partly = patch(client, tenant, channel, {"secret_headers": {"Authorization": MASK, "X-Api-Key": "k3y-rotated-0000"}})

    assert echoed["config"]["secret_headers"] == partly["config"]["secret_headers"] == {"Authorization": MASK, "X-Api-Key": MASK}
    headers = sent_headers(client, tenant, receiver, channel)
    assert (headers["Authorization"], headers["X-Api-Key"]) == (TOKEN, "k3y-rotated-0000")


def test_an_update_adds_replaces_and_removes_secret_headers_one_by_one(client, tenant, receiver):
    channel = webhook(client, tenant, receiver, secret_headers={"Authorization": TOKEN, "X-Api-Key": API_KEY})

    updated = patch(client, tenant, channel, {"secret_headers": {"X-Api-Key": None, "X-Tenant-Token": "tt-123456789"}})

    assert updated["config"]["secret_headers"] == {"Authorization": MASK, "X-Tenant-Token": MASK}
    headers = sent_headers(client, tenant, receiver, channel)
    assert headers["Authorization"] == TOKEN and headers["X-Tenant-Token"] == "tt-123456789"
    assert "X-Api-Key" not in headers


def test_the_mask_for_a_header_never_stored_is_not_sent(client, tenant, receiver):
    channel = webhook(client, tenant, receiver, secret_headers={"Authorization": TOKEN})

    updated = patch(client, tenant, channel, {"secret_headers": {"X-Made-Up": MASK}})

    assert updated["config"]["secret_headers"] == {"Authorization": MASK}
    assert "X-Made-Up" not in sent_headers(client, tenant, receiver, channel)


ECHOES = {
    "the bearer header": f"authorization: {TOKEN}",
    "the bare token": "token sk-live-4f7a9c2e8b1d6f3a is not valid",
    "the api key": f"unknown key {API_KEY}",
    "decoded basic credentials": "user pulse:correct-horse-battery refused",
    "the basic password alone": "password correct-horse-battery is wrong",
}
SECRETS = ("sk-live-4f7a9c2e8b1d6f3a", API_KEY, "correct-horse-battery", base64.b64encode(b"pulse:correct-horse-battery").decode())


@pytest.mark.parametrize("echo", ECHOES.values(), ids=ECHOES.keys())
def test_a_receiver_that_echoes_a_secret_header_never_gets_it_into_an_error(client, tenant, receiver, echo):
    receiver.default = (401, {}, echo.encode())
    channel = webhook(client, tenant, receiver, secret_headers={"Authorization": TOKEN, "X-Api-Key": API_KEY, "Proxy-Authorization": BASIC})

    response = client.post(f"/api/v2/channels/{channel['channel_id']}/test", headers=tenant.admin)

    assert response.status_code == 502
    detail = response.get_json()["detail"]
    assert "401" in detail and MASK in detail
    assert not [secret for secret in SECRETS if secret in detail]


def test_echoed_secret_headers_never_reach_the_delivery_log_or_the_worker_log(client, tenant, worker, receiver):
    receiver.default = (403, {}, f"forbidden for {TOKEN} and {API_KEY}".encode())
    channel = webhook(client, tenant, receiver, secret_headers={"Authorization": TOKEN, "X-Api-Key": API_KEY})
    create_rule(client, tenant, channel["channel_id"])

    post_alert(client, tenant)
    [job] = wait_for(lambda: settled(client, tenant, 1), message="the job to fail")
    detail = client.get(f"/api/v2/deliveries/{job['job_id']}", headers=tenant.admin).get_data(as_text=True)

    assert job["status"] == "FAILED" and "403" in job["last_error"]
    for text in (detail, worker.log()):
        assert "sk-live" not in text and API_KEY not in text


@pytest.mark.parametrize(
    "config, says",
    [
        ({"headers": {"authorization": "a"}, "secret_headers": {"Authorization": TOKEN}}, "not both"),
        ({"secret_headers": {"webhook-signature": TOKEN}}, "cannot be overridden"),
        ({"secret_headers": {"Bad Name": TOKEN}}, "not a valid header name"),
        ({"secret_headers": {"Authorization": TOKEN + "\r\nX-Injected: 1"}}, "line break"),
        ({"secret_headers": {"Authorization": 42}}, "string"),
    ],
    ids=["in both kinds", "a header Pulse sets", "an invalid name", "a line break", "not text"],
)
def test_invalid_secret_headers_are_422_without_quoting_the_value(client, tenant, receiver, config, says):
    response = client.post(
        "/api/v2/channels",
        json={"name": "n", "channel_type": "webhook", "config": {"url": receiver.url(), **config}},
        headers=tenant.admin,
    )

    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert says in body and "sk-live" not in body
    assert client.get("/api/v2/channels", headers=tenant.admin).get_json()["items"] == []
