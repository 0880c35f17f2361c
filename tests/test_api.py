"""The REST resources of DESIGN §6: shapes, lists and cursors, channels' write-only secrets."""

from __future__ import annotations

import json

from tests.support import create_channel, create_rule, post_alert


def test_device_lifecycle(client, tenant):
    created = client.post("/api/v2/devices", json={"device_id": "pump-9", "site_id": "plant-a", "tags": {"zone": "north", "tier": 2}}, headers=tenant.admin)
    assert created.status_code == 201
    assert created.get_json()["tags"] == {"zone": "north", "tier": 2}
    patched = client.patch("/api/v2/devices/pump-9", json={"tags": {"zone": "south"}}, headers=tenant.admin).get_json()
    assert patched["tags"] == {"zone": "south"} and patched["site_id"] == "plant-a"
    assert client.get("/api/v2/devices/pump-9", headers=tenant.viewer).get_json()["tags"] == {"zone": "south"}
    assert client.delete("/api/v2/devices/pump-9", headers=tenant.admin).status_code == 204
    assert client.get("/api/v2/devices/pump-9", headers=tenant.admin).status_code == 404


def test_lists_page_newest_first_with_a_cursor(client, tenant):
    for number in range(5):
        client.post("/api/v2/devices", json={"device_id": f"dev-{number}"}, headers=tenant.admin)
        post_alert(client, tenant, device_id=f"dev-{number}")
    for path, key in (("/api/v2/alerts", "alert_id"), ("/api/v2/devices", "device_id")):
        seen, cursor = [], None
        while True:
            page = client.get(path, query_string={"limit": 2, **({"cursor": cursor} if cursor else {})}, headers=tenant.admin).get_json()
            assert len(page["items"]) <= 2
            seen += [item[key] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 5 and len(set(seen)) == 5
        if key == "alert_id":
            assert seen == sorted(seen, reverse=True)
        else:
            assert seen == [f"dev-{n}" for n in reversed(range(5))]


def test_alert_filters(client, tenant):
    post_alert(client, tenant, device_id="a", alert_type="x", severity=1)
    high = post_alert(client, tenant, device_id="b", alert_type="y", severity=4)
    client.post(f"/api/v2/alerts/{high['alert_id']}/acknowledge", headers=tenant.admin)
    assert [a["device_id"] for a in client.get("/api/v2/alerts?min_severity=3", headers=tenant.admin).get_json()["items"]] == ["b"]
    assert [a["device_id"] for a in client.get("/api/v2/alerts?status=ACKNOWLEDGED", headers=tenant.admin).get_json()["items"]] == ["b"]
    assert [a["device_id"] for a in client.get("/api/v2/alerts?device_id=a", headers=tenant.admin).get_json()["items"]] == ["a"]


def test_an_alert_registers_its_device_and_takes_its_site(client, tenant):
    client.post("/api/v2/devices", json={"device_id": "known", "site_id": "plant-b"}, headers=tenant.admin)
    assert post_alert(client, tenant, device_id="known")["site_id"] == "plant-b"
    post_alert(client, tenant, device_id="brand-new")
    assert client.get("/api/v2/devices/brand-new", headers=tenant.admin).status_code == 200


def test_same_fingerprint_while_active_returns_the_existing_alert(client, tenant):
    first = client.post("/api/v2/alerts", json={"device_id": "p", "alert_type": "t", "severity": "high", "message": "m"}, headers=tenant.admin)
    again = client.post("/api/v2/alerts", json={"device_id": "p", "alert_type": "t", "severity": 3, "message": "m again"}, headers=tenant.admin)
    assert first.status_code == 201 and again.status_code == 200
    assert again.get_json()["alert_id"] == first.get_json()["alert_id"] and again.get_json()["jobs_queued"] == 0
    client.post(f"/api/v2/alerts/{first.get_json()['alert_id']}/close", headers=tenant.admin)
    reopened = client.post("/api/v2/alerts", json={"device_id": "p", "alert_type": "t", "severity": 3, "message": "m"}, headers=tenant.admin)
    assert reopened.status_code == 201 and reopened.get_json()["alert_id"] != first.get_json()["alert_id"]
    explicit = client.post("/api/v2/alerts", json={"device_id": "q", "alert_type": "u", "severity": 3, "message": "m", "fingerprint": "fp-1"}, headers=tenant.admin)
    other_device_same_fp = client.post("/api/v2/alerts", json={"device_id": "r", "alert_type": "v", "severity": 3, "message": "m", "fingerprint": "fp-1"}, headers=tenant.admin)
    assert other_device_same_fp.status_code == 200 and other_device_same_fp.get_json()["alert_id"] == explicit.get_json()["alert_id"]


def test_severity_names_are_accepted_and_labelled(client, tenant):
    for name, number, label in (("info", 1, "LOW"), ("warning", 2, "MEDIUM"), ("high", 3, "HIGH"), ("critical", 4, "CRITICAL")):
        alert = post_alert(client, tenant, device_id=f"sev-{name}", severity=name)
        assert (alert["severity"], alert["severity_label"]) == (number, label)


def test_acknowledge_and_close_are_idempotent(client, tenant):
    alert = post_alert(client, tenant)
    first = client.post(f"/api/v2/alerts/{alert['alert_id']}/acknowledge", headers=tenant.admin).get_json()
    again = client.post(f"/api/v2/alerts/{alert['alert_id']}/acknowledge", headers=tenant.admin)
    assert first["status"] == "ACKNOWLEDGED" and first["acknowledged_at"]
    assert again.status_code == 200 and again.get_json()["jobs_queued"] == 0
    closed = client.post(f"/api/v2/alerts/{alert['alert_id']}/close", headers=tenant.admin).get_json()
    assert closed["status"] == "CLOSED" and closed["closed_at"]
    assert client.post(f"/api/v2/alerts/{alert['alert_id']}/close", headers=tenant.admin).get_json()["jobs_queued"] == 0


def test_channel_secrets_are_write_only_and_masked(client, tenant):
    channel = create_channel(client, tenant, "http", {"url": "http://127.0.0.1:9/hook", "secret": "s3cr3t-value", "headers": {"X-A": "1"}})
    assert channel["channel_type"] == "webhook"
    assert channel["config"]["secret"] == "********"
    for response in (
        client.get(f"/api/v2/channels/{channel['channel_id']}", headers=tenant.admin),
        client.get("/api/v2/channels", headers=tenant.viewer),
    ):
        assert "s3cr3t-value" not in response.get_data(as_text=True)


def test_channel_patch_merges_config_and_keeps_a_masked_secret(client, db, tenant, app):
    from app.models import NotificationChannel
    from app.secrets import channel_config

    channel = create_channel(client, tenant, "webhook", {"url": "http://127.0.0.1:9/hook", "secret": "keep-me", "headers": {"X-A": "1"}})
    echoed = dict(channel["config"], headers={"X-B": "2"})
    patched = client.patch(f"/api/v2/channels/{channel['channel_id']}", json={"config": echoed}, headers=tenant.admin).get_json()
    assert patched["config"]["headers"] == {"X-A": "1", "X-B": "2"} and patched["config"]["secret"] == "********"
    client.patch(f"/api/v2/channels/{channel['channel_id']}", json={"config": {"method": "PUT"}, "name": "renamed"}, headers=tenant.admin)
    with db.session(tenant.tenant_id) as session:
        stored = session.get(NotificationChannel, channel["channel_id"])
        assert "keep-me" not in json.dumps(stored.config) and b"keep-me" not in stored.encrypted_secrets
        config = channel_config(app.extensions["pulse"].box, stored)
    assert (config.secret, config.method, config.url) == ("keep-me", "PUT", "http://127.0.0.1:9/hook")
    cleared = client.patch(f"/api/v2/channels/{channel['channel_id']}", json={"config": {"secret": None}}, headers=tenant.admin).get_json()
    assert cleared["config"]["secret"] is None


def test_routing_rule_lifecycle(client, tenant):
    channel = create_channel(client, tenant, "webhook", {"url": "http://127.0.0.1:9/hook"})
    rule = create_rule(client, tenant, channel["channel_id"], min_severity="high", site_ids=["a"], deliver_on=["OPEN", "CLOSED"])
    assert rule["min_severity"] == 3 and rule["deliver_on"] == ["OPEN", "CLOSED"] and rule["throttle_minutes"] == 0
    patched = client.patch(f"/api/v2/routing-rules/{rule['rule_id']}", json={"site_ids": None, "priority": 5}, headers=tenant.admin).get_json()
    assert patched["site_ids"] is None and patched["priority"] == 5 and patched["min_severity"] == 3
    assert client.delete(f"/api/v2/routing-rules/{rule['rule_id']}", headers=tenant.admin).status_code == 204
    assert client.get(f"/api/v2/routing-rules/{rule['rule_id']}", headers=tenant.admin).status_code == 404


def test_deleting_a_channel_deletes_its_rules(client, tenant):
    channel = create_channel(client, tenant, "webhook", {"url": "http://127.0.0.1:9/hook"})
    rule = create_rule(client, tenant, channel["channel_id"])
    assert client.delete(f"/api/v2/channels/{channel['channel_id']}", headers=tenant.admin).status_code == 204
    assert client.get(f"/api/v2/routing-rules/{rule['rule_id']}", headers=tenant.admin).status_code == 404


def test_openapi_describes_every_route(client, app):
    spec = client.get("/api/v2/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = {(method.upper(), "/api/v2" + path) for path, item in spec["paths"].items() for method in item}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v2/") and rule.endpoint != "api.openapi.spec":
            path = rule.rule.replace("<", "{").replace(">", "}")
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert (method, path) in documented, f"{method} {path} is not in the OpenAPI description"


def test_health_ready_and_metrics(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"] == {"database": "ok", "broker": "ok"}
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.mimetype == "text/plain"
    assert 'pulse_notification_jobs{status="FAILED"}' in metrics.get_data(as_text=True)


def test_readyz_is_503_when_the_broker_is_down(app):
    from dataclasses import replace

    from app import create_app

    down = create_app(replace(app.extensions["pulse"].settings, broker_url="redis://127.0.0.1:9/0"))
    response = down.test_client().get("/readyz")
    assert response.status_code == 503 and response.get_json()["checks"]["database"] == "ok"
    down.extensions["pulse"].db.dispose()


def test_concurrent_duplicates_open_one_alert(app, tenant):
    from concurrent.futures import ThreadPoolExecutor

    body = {"device_id": "racer", "alert_type": "flood", "severity": 3, "message": "water"}

    def post(_):
        response = app.test_client().post("/api/v2/alerts", json=body, headers=tenant.admin)
        return response.status_code, response.get_json()["alert_id"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, range(16)))
    assert sorted(status for status, _ in results).count(201) == 1
    assert len({alert_id for _, alert_id in results}) == 1


def test_the_console_is_served_at_the_root(client):
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    # The page loads the console's JavaScript modules, where these landmarks now live.
    for module in ("main.js", "live.js", "views/deliveries.js"):
        page += client.get(f"/static/console/{module}").get_data(as_text=True)
    for landmark in ('id="login-form"', "/auth/token", "/ws?token=", "/deliveries/replay"):
        assert landmark in page
