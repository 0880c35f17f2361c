"""GET /api/v2/openapi.json: the OpenAPI 3.1 description, generated from the routes and their models.

Every route under /api/v2 is described from what is registered: its path and methods from
Flask's URL map, its summary from the view's docstring, its request body, query parameters
and answers from the view's `@operation`, whose models are the ones that validate the
request and shape the answer (pydantic's JSON schema of each). A route without a
declaration fails the build, so the description can neither leave a route out nor drift
from what the API accepts and answers.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Flask, current_app
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from werkzeug.routing import Rule

from app.api import PUBLIC_ENDPOINTS
from app.api.operations import Operation
from app.problems import ProblemDetails

bp = Blueprint("openapi", __name__)

PREFIX = "/api/v2"
REF = "#/components/schemas/{model}"
PATH_PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")

ERRORS = {
    400: "Malformed JSON, or NUL characters in the path or query",
    401: "Missing, invalid or expired token",
    403: "Role not allowed (viewers cannot write)",
    404: "Unknown, or another tenant's, resource",
    409: "Invalid state change or duplicate",
    413: "Body over 1 MiB",
    422: "Validation error; `errors` lists the field paths",
    429: "Rate limited; `Retry-After` says in how many seconds to try again",
    502: "The receiver did not take the notification; `detail` says what it answered",
    503: "The database or the telemetry store is unavailable; try again shortly",
}
# What any operation may answer, whatever it declares.
COMMON_ERRORS = (400, 413, 503)


def _described_routes(app: Flask) -> list[tuple[Rule, Any]]:
    routes = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        if rule.rule.startswith(PREFIX + "/") and rule.endpoint != "api.openapi.spec":
            view = app.view_functions[rule.endpoint]
            if not rule.websocket and not isinstance(getattr(view, "operation", None), Operation):
                raise LookupError(f"{rule.endpoint} ({rule.rule}) declares no @operation")
            routes.append((rule, view))
    return routes


def _models(operations: list[Operation]) -> list[tuple[type[BaseModel], str]]:
    """Every model the description names, with the mode its schema is for (requests validate, answers serialize)."""
    models: dict[tuple[type[BaseModel], str], None] = {(ProblemDetails, "serialization"): None}
    for declared in operations:
        for model in (declared.body, declared.query):
            if model is not None:
                models[(model, "validation")] = None
        for model in declared.responses.values():
            if model is not None:
                models[(model, "serialization")] = None
    return list(models)


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema without the `null` an optional field adds (a query string cannot say null)."""
    variants = [variant for variant in schema.get("anyOf", ()) if variant != {"type": "null"}]
    plain = {key: value for key, value in schema.items() if key not in ("anyOf", "title") and value is not None}
    return {**plain, **variants[0]} if len(variants) == 1 else plain


def _parameters(rule: Rule, query: dict[str, Any] | None) -> list[dict[str, Any]]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in PATH_PARAMETER.findall(rule.rule)
    ]
    for name, schema in ((query or {}).get("properties") or {}).items():
        schema = _not_null(schema)
        parameter = {"name": name, "in": "query", "required": name in query.get("required", ()), "schema": schema}
        if "description" in schema:
            parameter["description"] = schema.pop("description")
        parameters.append(parameter)
    return parameters


def _json(schema: dict[str, Any], media_type: str = "application/json") -> dict[str, Any]:
    return {media_type: {"schema": schema}}


def _problem(status: int, refs: dict, description: str | None = None) -> dict[str, Any]:
    content = _json(refs[(ProblemDetails, "serialization")], "application/problem+json")
    return {"description": description or ERRORS[status], "content": content}


def _operation(rule: Rule, declared: Operation, refs: dict, queries: dict) -> dict[str, Any]:
    secured = rule.endpoint not in PUBLIC_ENDPOINTS
    parameters = _parameters(rule, queries.get(declared.query))
    responses: dict[str, Any] = {}
    for status, model in sorted(declared.responses.items()):
        responses[str(status)] = {"description": "Success"}
        if model is not None:
            responses[str(status)]["content"] = _json(refs[(model, "serialization")])
    errors = {*COMMON_ERRORS, *declared.errors}
    if secured:
        errors |= {401, 403}
    if any(parameter["in"] == "path" for parameter in parameters):
        errors.add(404)
    if declared.body is not None or declared.query is not None:
        errors.add(422)
    for status in sorted(errors):
        responses[str(status)] = _problem(status, refs)
    described: dict[str, Any] = {"operationId": rule.endpoint, "summary": declared.summary, "responses": responses}
    if secured:
        described["security"] = [{"bearer": []}]
    if parameters:
        described["parameters"] = parameters
    if declared.body is not None:
        described["requestBody"] = {"required": True, "content": _json(refs[(declared.body, "validation")])}
    return described


def _websocket(rule: Rule, refs: dict) -> dict[str, Any]:
    """A WebSocket route: a GET with the token in the query, then the feed's own protocol (DESIGN §8)."""
    return {
        "operationId": rule.endpoint,
        "summary": "WebSocket feed of telemetry and alert changes (the token in ?token=)",
        "parameters": [{"name": "token", "in": "query", "required": False, "schema": {"type": "string"}}],
        "responses": {
            "101": {"description": "Switching Protocols; a refused token is closed with 4001 or 4003"},
            "400": _problem(400, refs, "Not a WebSocket handshake"),
        },
    }


def build_spec(app: Flask) -> dict[str, Any]:
    """The whole description of `app`'s API, from its URL map and the views' declarations."""
    routes = _described_routes(app)
    operations = [view.operation for rule, view in routes if not rule.websocket]
    refs, schema = models_json_schema(_models(operations), ref_template=REF)
    components: dict[str, Any] = schema.get("$defs", {})
    # Query parameters are listed one by one, not as components of their own.
    query_models = {declared.query for declared in operations if declared.query is not None}
    queries = {model: components.pop(refs[(model, "validation")]["$ref"].rsplit("/", 1)[1]) for model in query_models}
    paths: dict[str, Any] = {}
    for rule, view in routes:
        path = PATH_PARAMETER.sub(r"{\1}", rule.rule[len(PREFIX) :])
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if rule.websocket:
                described = _websocket(rule, refs)
            else:
                described = _operation(rule, view.operation, refs, queries)
            paths.setdefault(path, {})[method.lower()] = described
    return {
        "openapi": "3.1.0",
        "info": {"title": "Pulse", "version": "2.0.0", "description": "Alert delivery for IoT monitoring."},
        "servers": [{"url": PREFIX}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


@bp.get("/openapi.json", endpoint="spec")
def spec():
    """The description, built once per app (the routes do not change once it serves)."""
    cached = current_app.extensions.get("openapi")
    if cached is None:
        cached = current_app.extensions["openapi"] = build_spec(current_app)
    return cached
