"""Bad input gets its status code as problem+json and changes nothing; no input gives a 500."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.models import Alert, Device, NotificationChannel, NotificationJob, RoutingRule
from tests.support import create_channel


def counts(db, tenant_id):
    with db.session(tenant_id) as session:
        return tuple(
            session.scalar(select(func.count()).select_from(model).where(model.tenant_id == tenant_id))
            for model in (Device, Alert, NotificationChannel, RoutingRule, NotificationJob)
        )


def assert_problem(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    return body


ALERT = {"device_id": "pump-1", "alert_type": "overheat", "severity": 4, "message": "hot"}

BAD_BODIES = [
    ("malformed JSON", "/api/v2/alerts", b'{"device_id": "pump-1",', 400),
    ("not JSON at all", "/api/v2/alerts", b"device_id=pump-1", 400),
    ("a JSON array", "/api/v2/alerts", b"[]", 422),
    ("empty body", "/api/v2/alerts", b"", 422),
    ("severity of the wrong type", "/api/v2/alerts", b'{"device_id": "p", "alert_type": "t", "severity": [4], "message": "m"}', 422),
    ("severity out of range", "/api/v2/alerts", b'{"device_id": "p", "alert_type": "t", "severity": 9, "message": "m"}', 422),
    ("severity as a boolean", "/api/v2/alerts", b'{"device_id": "p", "alert_type": "t", "severity": true, "message": "m"}', 422),
    ("message of the wrong type", "/api/v2/alerts", b'{"device_id": "p", "alert_type": "t", "severity": 1, "message": 5}', 422),
    ("details not an object", "/api/v2/alerts", b'{"device_id": "p", "alert_type": "t", "severity": 1, "message": "m", "details": "x"}', 422),
    ("missing field", "/api/v2/alerts", b'{"device_id": "p", "severity": 1, "message": "m"}', 422),
    ("unknown field", "/api/v2/alerts", b'{"device_id": "p", "alert_type": "t", "severity": 1, "message": "m", "colour": "red"}', 422),
    ("device id with a slash", "/api/v2/devices", b'{"device_id": "a/b"}', 422),
    ("tags not an object", "/api/v2/devices", b'{"device_id": "d", "tags": ["x"]}', 422),
    ("unknown channel type", "/api/v2/channels", b'{"name": "n", "channel_type": "carrier-pigeon", "config": {}}', 422),
    ("webhook without url", "/api/v2/channels", b'{"name": "n", "channel_type": "webhook", "config": {}}', 422),
    ("webhook with an unknown key", "/api/v2/channels", b'{"name": "n", "channel_type": "webhook", "config": {"url": "http://127.0.0.1:9/", "colour": 1}}', 422),
    ("webhook method not allowed", "/api/v2/channels", b'{"name": "n", "channel_type": "webhook", "config": {"url": "http://127.0.0.1:9/", "method": "DELETE"}}', 422),
    ("rule naming no channel", "/api/v2/routing-rules", b'{"channel_id": 999999999}', 422),
    ("rule with an unknown event", "/api/v2/routing-rules", b'{"channel_id": 1, "deliver_on": ["EXPLODED"]}', 422),
    ("rule with a negative throttle", "/api/v2/routing-rules", b'{"channel_id": 1, "throttle_minutes": -5}', 422),
    ("replay with a bad date", "/api/v2/deliveries/replay", b'{"since": "yesterday"}', 422),
]


@pytest.mark.parametrize("case, path, body, status", BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_body_is_refused_and_changes_nothing(client, db, tenant, case, path, body, status):
    before = counts(db, tenant.tenant_id)
    response = client.post(path, data=body, headers={**tenant.admin, "Content-Type": "application/json"})
    body = assert_problem(response, status)
    if status == 422:
        assert isinstance(body["errors"], list) and body["errors"]
    assert counts(db, tenant.tenant_id) == before


def test_validation_errors_name_the_field_path(client, tenant):
    response = client.post("/api/v2/channels", json={"name": "n", "channel_type": "webhook", "config": {"url": "ftp://x"}}, headers=tenant.admin)
    body = assert_problem(response, 422)
    assert [error["field"] for error in body["errors"]] == ["config.url"]


def test_a_body_over_one_mebibyte_is_413_before_it_is_read(client, db, tenant):
    before = counts(db, tenant.tenant_id)
    big = b'{"device_id": "p", "alert_type": "t", "severity": 1, "message": "' + b"x" * (1024 * 1024) + b'"}'
    assert_problem(client.post("/api/v2/alerts", data=big, headers={**tenant.admin, "Content-Type": "application/json"}), 413)
    assert counts(db, tenant.tenant_id) == before


def test_oversized_body_without_a_token_is_still_413(client):
    assert_problem(client.post("/api/v2/alerts", data=b"x" * (1024 * 1024 + 1), headers={"Content-Type": "application/json"}), 413)


@pytest.mark.parametrize(
    "path",
    ["/api/v2/alerts?limit=0", "/api/v2/alerts?limit=501", "/api/v2/alerts?limit=ten", "/api/v2/alerts?status=SLEEPING", "/api/v2/alerts?cursor=%%%", "/api/v2/alerts?cursor=WzEsMl0", "/api/v2/alerts?min_severity=7", "/api/v2/deliveries?status=LOST", "/api/v2/deliveries?alert_id=x", "/api/v2/devices?cursor=bm9wZQ"],
)
def test_bad_query_parameters_are_422(client, tenant, path):
    assert_problem(client.get(path, headers=tenant.admin), 422)


@pytest.mark.parametrize("path", ["/api/v2/alerts/abc", "/api/v2/alerts/99999999999999999999999", "/api/v2/channels/-1", "/api/v2/deliveries/1e9", "/api/v2/nothing-here"])
def test_unknown_ids_and_paths_are_404(client, tenant, path):
    assert_problem(client.get(path, headers=tenant.admin), 404)


def test_wrong_method_is_405_problem(client, tenant):
    assert_problem(client.put("/api/v2/alerts", json={}, headers=tenant.admin), 405)


def test_a_literal_private_address_is_refused_at_creation_when_private_destinations_are_off(app, tenant):
    from dataclasses import replace

    from app import create_app

    strict = create_app(replace(app.extensions["pulse"].settings, delivery=replace(app.extensions["pulse"].settings.delivery, allow_private_destinations=False)))
    response = strict.test_client().post(
        "/api/v2/channels", json={"name": "meta", "channel_type": "webhook", "config": {"url": "http://169.254.169.254/latest"}}, headers=tenant.admin
    )
    body = assert_problem(response, 422)
    assert "metadata" in body["detail"]
    strict.extensions["pulse"].db.dispose()


def test_duplicate_device_is_409(client, tenant):
    assert client.post("/api/v2/devices", json={"device_id": "twin"}, headers=tenant.admin).status_code == 201
    assert_problem(client.post("/api/v2/devices", json={"device_id": "twin"}, headers=tenant.admin), 409)


def test_acknowledging_a_closed_alert_is_409_and_changes_nothing(client, tenant):
    alert = client.post("/api/v2/alerts", json=ALERT, headers=tenant.admin).get_json()
    client.post(f"/api/v2/alerts/{alert['alert_id']}/close", headers=tenant.admin)
    assert_problem(client.post(f"/api/v2/alerts/{alert['alert_id']}/acknowledge", headers=tenant.admin), 409)
    assert client.get(f"/api/v2/alerts/{alert['alert_id']}", headers=tenant.admin).get_json()["status"] == "CLOSED"


def test_a_channel_config_patch_that_is_invalid_changes_nothing(client, tenant):
    channel = create_channel(client, tenant, "webhook", {"url": "http://127.0.0.1:9/hook"})
    assert_problem(client.patch(f"/api/v2/channels/{channel['channel_id']}", json={"config": {"method": "GET"}}, headers=tenant.admin), 422)
    assert client.get(f"/api/v2/channels/{channel['channel_id']}", headers=tenant.admin).get_json()["config"]["method"] == "POST"


HOSTILE = [
    ("NUL in an identifier", "post", "/api/v2/alerts", '{"device_id": "d\\u0000", "alert_type": "t", "severity": 1, "message": "m"}', 422),
    ("NUL in free text", "post", "/api/v2/alerts", '{"device_id": "d", "alert_type": "t", "severity": 1, "message": "m\\u0000"}', 422),
    ("NUL deep in details", "post", "/api/v2/alerts", '{"device_id": "d", "alert_type": "t", "severity": 1, "message": "m", "details": {"a": ["\\u0000"]}}', 422),
    ("NUL in a login", "post", "/api/v2/auth/token", '{"email": "a\\u0000b", "password": "x"}', 422),
    ("NUL in a channel URL", "post", "/api/v2/channels", '{"name": "n", "channel_type": "webhook", "config": {"url": "http://127.0.0.1:9/\\u0000"}}', 422),
    ("a lone surrogate", "post", "/api/v2/alerts", '{"device_id": "d", "alert_type": "t", "severity": 1, "message": "m", "fingerprint": "\\ud800"}', 422),
    ("NaN, which is not JSON", "post", "/api/v2/alerts", '{"device_id": "d", "alert_type": "t", "severity": 1, "message": "m", "details": {"n": NaN}}', 400),
    ("Infinity, which is not JSON", "post", "/api/v2/alerts", '{"device_id": "d", "alert_type": "t", "severity": 1, "message": "m", "details": {"n": Infinity}}', 400),
    ("arrays nested 100,000 deep", "post", "/api/v2/alerts", "[" * 100_000 + "]" * 100_000, 400),
    ("objects nested 50,000 deep", "post", "/api/v2/alerts", '{"a":' * 50_000 + "1" + "}" * 50_000, 400),
    ("details nested 40 deep", "post", "/api/v2/alerts", '{"device_id": "d", "alert_type": "t", "severity": 1, "message": "m", "details": ' + '{"a":' * 40 + "1" + "}" * 40 + "}", 422),
    ("NUL in a query", "get", "/api/v2/alerts?device_id=%00", None, 400),
    ("NUL in a path", "get", "/api/v2/devices/ab%00c", None, 400),
]


@pytest.mark.parametrize("case, method, path, body, status", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_input_is_refused_without_a_500(client, db, tenant, case, method, path, body, status):
    before = counts(db, tenant.tenant_id)
    response = getattr(client, method)(path, data=body, headers={**tenant.admin, "Content-Type": "application/json"})
    assert_problem(response, status)
    assert counts(db, tenant.tenant_id) == before


def test_a_database_outage_is_503_not_500(app, tenant):
    from dataclasses import replace

    from app import create_app

    settings = app.extensions["pulse"].settings
    down = create_app(replace(settings, database_url="postgresql+psycopg2://postgres@127.0.0.1:9/pulse"))
    response = down.test_client().post(
        "/api/v2/alerts", json={"device_id": "p", "alert_type": "t", "severity": 1, "message": "m"}, headers=tenant.admin
    )
    body = assert_problem(response, 503)
    assert response.headers["Retry-After"] == "5" and "database" in body["detail"]
    assert down.test_client().get("/readyz").status_code == 503
    down.extensions["pulse"].db.dispose()
