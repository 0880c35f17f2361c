"""A second tenant's token sees 404 on every one of the first tenant's resources, and changes nothing."""

from __future__ import annotations

import pytest

from tests.support import create_channel, create_rule, post_alert


@pytest.fixture
def first_tenant_resources(client, tenant):
    device = client.post("/api/v2/devices", json={"device_id": "shared-name", "site_id": "s1"}, headers=tenant.admin).get_json()
    channel = create_channel(client, tenant, "webhook", {"url": "http://127.0.0.1:9/hook", "secret": "first-secret"})
    rule = create_rule(client, tenant, channel["channel_id"])
    alert = post_alert(client, tenant, device_id="shared-name")
    [job] = client.get("/api/v2/deliveries", headers=tenant.admin).get_json()["items"]
    return {"device": device, "channel": channel, "rule": rule, "alert": alert, "job": job}


def other_tenant_requests(r):
    device, channel, rule, alert, job = r["device"]["device_id"], r["channel"]["channel_id"], r["rule"]["rule_id"], r["alert"]["alert_id"], r["job"]["job_id"]
    return [
        ("get", f"/api/v2/devices/{device}", None),
        ("patch", f"/api/v2/devices/{device}", {"site_id": "stolen"}),
        ("delete", f"/api/v2/devices/{device}", None),
        ("get", f"/api/v2/devices/{device}/telemetry", None),
        ("post", f"/api/v2/devices/{device}/telemetry", {"metrics": {"t": 1}}),
        ("get", f"/api/v2/alerts/{alert}", None),
        ("post", f"/api/v2/alerts/{alert}/acknowledge", None),
        ("post", f"/api/v2/alerts/{alert}/close", None),
        ("get", f"/api/v2/channels/{channel}", None),
        ("patch", f"/api/v2/channels/{channel}", {"name": "stolen"}),
        ("post", f"/api/v2/channels/{channel}/test", None),
        ("delete", f"/api/v2/channels/{channel}", None),
        ("get", f"/api/v2/routing-rules/{rule}", None),
        ("patch", f"/api/v2/routing-rules/{rule}", {"priority": 1}),
        ("delete", f"/api/v2/routing-rules/{rule}", None),
        ("get", f"/api/v2/deliveries/{job}", None),
        ("post", f"/api/v2/deliveries/{job}/replay", None),
    ]


def test_every_resource_of_another_tenant_is_404(client, tenant, other_tenant, first_tenant_resources):
    for method, path, body in other_tenant_requests(first_tenant_resources):
        response = getattr(client, method)(path, json=body, headers=other_tenant.admin)
        assert response.status_code == 404, f"{method} {path} answered {response.status_code}"
        assert response.mimetype == "application/problem+json"
    # Nothing changed for the owner.
    r = first_tenant_resources
    assert client.get(f"/api/v2/devices/{r['device']['device_id']}", headers=tenant.admin).get_json()["site_id"] == "s1"
    assert client.get(f"/api/v2/alerts/{r['alert']['alert_id']}", headers=tenant.admin).get_json()["status"] == "OPEN"
    assert client.get(f"/api/v2/channels/{r['channel']['channel_id']}", headers=tenant.admin).get_json()["name"] == "webhook channel"
    assert client.get(f"/api/v2/routing-rules/{r['rule']['rule_id']}", headers=tenant.admin).status_code == 200


def test_lists_show_only_the_callers_tenant(client, tenant, other_tenant, first_tenant_resources):
    for path in ("/api/v2/devices", "/api/v2/alerts", "/api/v2/channels", "/api/v2/routing-rules", "/api/v2/deliveries"):
        assert client.get(path, headers=other_tenant.admin).get_json()["items"] == [], path
        assert client.get(path, headers=tenant.admin).get_json()["items"] != [], path


def test_a_rule_cannot_name_another_tenants_channel(client, tenant, other_tenant, first_tenant_resources):
    response = client.post("/api/v2/routing-rules", json={"channel_id": first_tenant_resources["channel"]["channel_id"]}, headers=other_tenant.admin)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "channel_id"


def test_bulk_replay_never_touches_another_tenant(client, tenant, other_tenant, first_tenant_resources):
    response = client.post("/api/v2/deliveries/replay", json={"channel_id": first_tenant_resources["channel"]["channel_id"], "dry_run": True}, headers=other_tenant.admin)
    assert response.get_json() == {"would_replay": 0}


def test_the_same_device_id_in_two_tenants_is_two_devices(client, tenant, other_tenant, first_tenant_resources):
    response = client.post("/api/v2/devices", json={"device_id": "shared-name"}, headers=other_tenant.admin)
    assert response.status_code == 201
