"""Telemetry: POST /devices/{device_id}/telemetry (stored, then pushed live) and GET, newest first."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, request

from app.api.common import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    decode_cursor,
    encode_cursor,
    invalid_cursor,
    parse_body,
    query_int,
    tenant_id,
    tenant_session,
)
from app.api.devices import get_device
from app.models import utcnow
from app.problems import Problem, field_problem
from app.schemas import TelemetryIn
from app.telemetry import Reading, TelemetryStoreError, as_utc, is_metric_value, telemetry_store
from app.web import pulse

bp = Blueprint("telemetry", __name__)


def _require_device(device_id: str) -> None:
    """404 unless the caller's tenant has this device."""
    with tenant_session() as session:
        get_device(session, device_id)


def _unavailable(exc: TelemetryStoreError) -> Problem:
    return Problem(503, f"the telemetry store is unavailable: {exc}")


@bp.post("/devices/<device_id>/telemetry")
def ingest(device_id: str):
    body = parse_body(TelemetryIn)
    if not body.metrics:
        raise field_problem("metrics", "at least one metric is needed")
    for name, value in body.metrics.items():
        if not is_metric_value(value):
            raise field_problem(f"metrics.{name}", "must be a finite number")
    _require_device(device_id)
    reading = Reading(as_utc(body.timestamp) if body.timestamp else utcnow(), dict(body.metrics))
    try:
        telemetry_store().write(tenant_id(), device_id, reading)
    except TelemetryStoreError as exc:
        raise _unavailable(exc) from None
    pulse().events.telemetry(tenant_id(), device_id, reading.view())
    return {"device_id": device_id, **reading.view()}, 201


@bp.get("/devices/<device_id>/telemetry")
def latest(device_id: str):
    limit = query_int("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    before = _cursor_time(request.args.get("cursor"))
    _require_device(device_id)
    try:
        readings = telemetry_store().latest(tenant_id(), device_id, limit + 1, before=before)
    except TelemetryStoreError as exc:
        raise _unavailable(exc) from None
    page = readings[:limit]
    next_cursor = encode_cursor([page[-1].timestamp.isoformat()]) if len(readings) > limit else None
    return {"items": [reading.view() for reading in page], "next_cursor": next_cursor}


def _cursor_time(raw: str | None) -> datetime | None:
    cursor = decode_cursor(raw)
    if cursor is None:
        return None
    try:
        if len(cursor) != 1 or not isinstance(cursor[0], str):
            raise ValueError
        return as_utc(datetime.fromisoformat(cursor[0]))
    except ValueError:
        raise invalid_cursor() from None
