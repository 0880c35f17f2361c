"""GET /api/v2/openapi.json: the OpenAPI 3.1 description of the API.

Request bodies come from the same pydantic models that validate them, so the description
cannot drift from what the API accepts.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from pydantic import BaseModel

from app import schemas

bp = Blueprint("openapi", __name__)

ERRORS = {
    "400": "Malformed JSON",
    "401": "Missing, invalid or expired token",
    "403": "Role not allowed (viewers cannot write)",
    "404": "Unknown, or another tenant's, resource",
    "409": "Invalid state change or duplicate",
    "413": "Body over 1 MiB",
    "422": "Validation error; `errors` lists the field paths",
}

# (method, path, summary, request model, success status, response schema name)
ROUTES: list[tuple[str, str, str, type[BaseModel] | None, str, str]] = [
    ("post", "/auth/token", "Exchange email and password for a bearer token", schemas.TokenRequest, "200", "Token"),
    ("post", "/devices", "Register a device", schemas.DeviceCreate, "201", "Device"),
    ("get", "/devices", "List devices, newest first", None, "200", "Page"),
    ("get", "/devices/{device_id}", "Read a device", None, "200", "Device"),
    ("patch", "/devices/{device_id}", "Update a device's site and tags", schemas.DeviceUpdate, "200", "Device"),
    ("delete", "/devices/{device_id}", "Delete a device", None, "204", ""),
    ("post", "/devices/{device_id}/telemetry", "Ingest one telemetry point", schemas.TelemetryIn, "201", "Telemetry"),
    ("get", "/devices/{device_id}/telemetry", "Latest telemetry, newest first", None, "200", "Page"),
    ("post", "/alerts", "Open an alert (200 with the active alert when the fingerprint is a duplicate)", schemas.AlertCreate, "201", "AlertWithJobs"),
    ("get", "/alerts", "List alerts (status, device_id, min_severity, limit, cursor)", None, "200", "Page"),
    ("get", "/alerts/{alert_id}", "Read an alert", None, "200", "Alert"),
    ("post", "/alerts/{alert_id}/acknowledge", "Acknowledge an alert", None, "200", "AlertWithJobs"),
    ("post", "/alerts/{alert_id}/close", "Close an alert", None, "200", "AlertWithJobs"),
    ("post", "/channels", "Create a notification channel (secrets are write-only)", schemas.ChannelCreate, "201", "Channel"),
    ("get", "/channels", "List channels", None, "200", "Page"),
    ("get", "/channels/{channel_id}", "Read a channel (secrets masked)", None, "200", "Channel"),
    ("patch", "/channels/{channel_id}", "Update a channel; config merges key by key", schemas.ChannelUpdate, "200", "Channel"),
    ("delete", "/channels/{channel_id}", "Delete a channel", None, "204", ""),
    ("post", "/channels/{channel_id}/test", "Send a test notification now (502 with the receiver's answer on failure)", None, "200", "TestResult"),
    ("post", "/routing-rules", "Create a routing rule", schemas.RuleCreate, "201", "RoutingRule"),
    ("get", "/routing-rules", "List routing rules", None, "200", "Page"),
    ("get", "/routing-rules/{rule_id}", "Read a routing rule", None, "200", "RoutingRule"),
    ("patch", "/routing-rules/{rule_id}", "Update a routing rule", schemas.RuleUpdate, "200", "RoutingRule"),
    ("delete", "/routing-rules/{rule_id}", "Delete a routing rule", None, "204", ""),
    ("get", "/deliveries", "List deliveries (status, alert_id, channel_id); status=FAILED is the dead-letter queue", None, "200", "Page"),
    ("get", "/deliveries/{job_id}", "Read a delivery with its attempts (`log`)", None, "200", "Delivery"),
    ("post", "/deliveries/{job_id}/replay", "Replay a FAILED delivery", None, "202", "Delivery"),
    ("post", "/deliveries/replay", "Replay FAILED deliveries by filter (dry_run counts)", schemas.BulkReplay, "202", "ReplayResult"),
]

OBJECT = {"type": "object", "additionalProperties": True}
RESPONSES = {
    "Token": {"type": "object", "properties": {"access_token": {"type": "string"}, "token_type": {"type": "string"}, "expires_in": {"type": "integer"}}},
    "Page": {"type": "object", "properties": {"items": {"type": "array", "items": OBJECT}, "next_cursor": {"type": ["string", "null"]}}},
    "Device": OBJECT,
    "Telemetry": OBJECT,
    "Alert": OBJECT,
    "AlertWithJobs": {"allOf": [OBJECT, {"type": "object", "properties": {"jobs_queued": {"type": "integer"}}}]},
    "Channel": OBJECT,
    "RoutingRule": OBJECT,
    "Delivery": OBJECT,
    "TestResult": {"type": "object", "properties": {"status": {"const": "ok"}, "duration_ms": {"type": "number"}}},
    "ReplayResult": {"type": "object", "properties": {"replayed": {"type": "integer"}, "would_replay": {"type": "integer"}}},
    "Problem": {
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object"}},
        },
    },
}


def build_spec() -> dict[str, Any]:
    """The whole description, built from the route table and the request models."""
    components: dict[str, Any] = dict(RESPONSES)
    paths: dict[str, Any] = {}
    for method, path, summary, model, status, response in ROUTES:
        operation: dict[str, Any] = {"summary": summary, "responses": {}}
        if path != "/auth/token":
            operation["security"] = [{"bearer": []}]
        params = [part[1:-1] for part in path.split("/") if part.startswith("{")]
        if params:
            operation["parameters"] = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in params]
        if model is not None:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(schema.pop("$defs", {}))
            components[model.__name__] = schema
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}
        success: dict[str, Any] = {"description": "Success"}
        if response:
            success["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{response}"}}}
        operation["responses"][status] = success
        for code, description in ERRORS.items():
            operation["responses"][code] = {"description": description, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        paths.setdefault(path, {})[method] = operation
    paths["/ws"] = {"get": {"summary": "WebSocket feed of telemetry and alert changes (token in ?token=)", "responses": {"101": {"description": "Switching protocols"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Pulse", "version": "2.0.0", "description": "Alert delivery for IoT monitoring."},
        "servers": [{"url": "/api/v2"}],
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }


@bp.get("/openapi.json", endpoint="spec")
def spec():
    return build_spec()
