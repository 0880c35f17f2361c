"""GET /api/v2/openapi.json is generated from the routes and their models, and says what the API answers.

Schemathesis (test_api_fuzz) checks that answers validate against the description; these
tests check what it cannot: that each resource answers exactly the keys of DESIGN §4 and
that its documented schema names exactly those, that query parameters are described, and
that a route nobody described cannot slip by.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.support import create_channel, create_rule, post_alert, settled, wait_for

ALERT = {
    "alert_id", "tenant_id", "device_id", "site_id", "alert_type", "severity", "severity_label", "message", "details",
    "fingerprint", "status", "triggered_at", "acknowledged_at", "acknowledged_by", "closed_at", "closed_by",
}
JOB = {
    "job_id", "tenant_id", "alert_id", "channel_id", "rule_id", "event_type", "escalation_step", "status", "attempts", "next_attempt_at",
    "last_error", "payload", "created_at", "delivered_at",
}
# The keys each answer has today; a change here is a change of the public contract.
KEYS = {
    "device": {"device_id", "tenant_id", "site_id", "tags", "created_at"},
    "alert": ALERT,
    "alert answer": ALERT | {"jobs_queued"},
    "channel": {"channel_id", "tenant_id", "name", "channel_type", "config", "is_enabled", "health", "created_at", "updated_at"},
    "rule": {
        "rule_id", "tenant_id", "channel_id", "min_severity", "alert_type", "device_tag_key", "device_tag_val",
        "site_ids", "device_prefixes", "deliver_on", "throttle_minutes", "priority", "is_enabled", "escalation", "created_at",
    },
    "silence": {
        "silence_id", "tenant_id", "name", "comment", "matchers", "channel_ids", "starts_at", "ends_at", "recurrence",
        "notify_on_end", "created_by", "created_at", "active",
    },
    "explanation": {"event_type", "rules", "channels"},
    "explained rule": {"rule_id", "channel_id", "outcome", "failed", "silence_id"},
    "delivery": JOB | {"log"},
    "attempt": {"id", "job_id", "attempt", "success", "status_code", "error", "duration_ms", "created_at"},
    "reading": {"timestamp", "metrics"},
    "ingested": {"device_id", "timestamp", "metrics"},
}


def described(spec: dict, schema: dict) -> dict:
    """A schema with its `$ref` followed."""
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def success_schema(spec: dict, method: str, path: str, status: int) -> dict:
    content = spec["paths"][path][method]["responses"][str(status)]["content"]["application/json"]
    return described(spec, content["schema"])


@pytest.fixture
def answers(client, tenant, worker, receiver):
    """One answer of every kind, with the documented schema it claims: (kind, body, schema)."""
    spec = client.get("/api/v2/openapi.json").get_json()
    h = tenant.admin
    client.post("/api/v2/devices", json={"device_id": "d-1", "site_id": "s-1", "tags": {"zone": "n"}}, headers=h)
    ingested = client.post("/api/v2/devices/d-1/telemetry", json={"metrics": {"t": 1.5}}, headers=h).get_json()
    channel = create_channel(client, tenant, "http", {"url": receiver.url(), "secret": "s3cret"})
    rule = create_rule(client, tenant, channel["channel_id"])
    opened = post_alert(client, tenant, device_id="d-1")
    [job] = wait_for(lambda: settled(client, tenant, 1), timeout=30)
    delivery = client.get(f"/api/v2/deliveries/{job['job_id']}", headers=h).get_json()
    readings = client.get("/api/v2/devices/d-1/telemetry", headers=h).get_json()
    silence = client.post("/api/v2/silences", json={"name": "later", "starts_at": "2099-01-01T00:00:00Z", "ends_at": "2099-01-02T00:00:00Z"}, headers=h).get_json()
    explanation = client.post("/api/v2/routing/explain", json={"alert": {"device_id": "d-1", "alert_type": "x", "severity": 2}}, headers=h).get_json()
    explained = success_schema(spec, "post", "/routing/explain", 200)
    return spec, [
        ("silence", silence, success_schema(spec, "post", "/silences", 201)),
        ("explanation", explanation, explained),
        ("explained rule", explanation["rules"][0], described(spec, explained["properties"]["rules"]["items"])),
        ("device", client.get("/api/v2/devices/d-1", headers=h).get_json(), success_schema(spec, "get", "/devices/{device_id}", 200)),
        ("alert", client.get(f"/api/v2/alerts/{opened['alert_id']}", headers=h).get_json(), success_schema(spec, "get", "/alerts/{alert_id}", 200)),
        ("alert answer", opened, success_schema(spec, "post", "/alerts", 201)),
        ("channel", channel, success_schema(spec, "post", "/channels", 201)),
        ("rule", rule, success_schema(spec, "post", "/routing-rules", 201)),
        ("delivery", delivery, success_schema(spec, "get", "/deliveries/{job_id}", 200)),
        ("attempt", delivery["log"][0], described(spec, success_schema(spec, "get", "/deliveries/{job_id}", 200)["properties"]["log"]["items"])),
        ("reading", readings["items"][0], described(spec, success_schema(spec, "get", "/devices/{device_id}/telemetry", 200)["properties"]["items"]["items"])),
        ("ingested", ingested, success_schema(spec, "post", "/devices/{device_id}/telemetry", 201)),
    ]


def test_each_resource_answers_exactly_its_keys_and_its_schema_names_exactly_those(answers):
    _spec, cases = answers
    for kind, body, schema in cases:
        assert set(body) == KEYS[kind], kind
        assert set(schema["properties"]) == KEYS[kind], kind
        assert set(schema["required"]) == KEYS[kind], kind


def test_times_are_iso_8601_with_a_utc_offset_and_described_as_date_times(answers):
    spec, cases = answers
    for kind, body, schema in cases:
        for key, value in body.items():
            if key.endswith("_at") or key == "timestamp":
                variants = schema["properties"][key].get("anyOf") or [schema["properties"][key]]
                assert any(v.get("type") == "string" and v.get("format") == "date-time" for v in variants), (kind, key)
                if value is not None:
                    assert value.endswith("+00:00") and datetime.fromisoformat(value).utcoffset() == timedelta(0), (kind, key, value)


def test_list_query_parameters_are_described(client):
    spec = client.get("/api/v2/openapi.json").get_json()
    parameters = {p["name"]: p for p in spec["paths"]["/alerts"]["get"]["parameters"]}
    assert set(parameters) == {"limit", "cursor", "status", "device_id", "min_severity"}
    assert (parameters["limit"]["schema"]["minimum"], parameters["limit"]["schema"]["maximum"]) == (1, 500)
    assert described(spec, parameters["status"]["schema"])["enum"] == ["OPEN", "ACKNOWLEDGED", "CLOSED"]
    assert {p["name"] for p in spec["paths"]["/silences"]["get"]["parameters"]} == {"limit", "cursor", "active"}
    for path in ("/channels", "/routing-rules", "/deliveries", "/devices", "/devices/{device_id}/telemetry", "/silences"):
        names = {p["name"] for p in spec["paths"][path]["get"]["parameters"]}
        assert {"limit", "cursor"} <= names, path


def test_errors_are_described_as_problem_details(client):
    spec = client.get("/api/v2/openapi.json").get_json()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    schema = described(spec, response["content"]["application/problem+json"]["schema"])
                    assert {"type", "title", "status", "detail"} <= set(schema["required"]), (method, path, status)


def test_a_route_without_a_declaration_fails_the_description():
    from app import create_app
    from app.api.openapi import build_spec

    extra = create_app(test_config={"TESTING": True})
    extra.add_url_rule("/api/v2/undescribed", "undescribed", lambda: {})
    with pytest.raises(LookupError, match="undescribed"):
        build_spec(extra)
    extra.extensions["pulse"].db.dispose()
