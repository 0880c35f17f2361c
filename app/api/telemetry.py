"""Telemetry: POST /devices/{device_id}/telemetry (stored, then pushed live) and GET, newest first."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint

from app.api.common import get_or_404, tenant_id, tenant_session
from app.api.operations import operation
from app.api.pagination import keyset_page
from app.api.queries import ListQuery
from app.models import Device, utcnow
from app.problems import Problem, field_problem
from app.schemas import TelemetryIn
from app.telemetry import Reading, TelemetryStoreError, as_utc, is_metric_value, telemetry_store
from app.views import IngestedReading, Page, ReadingView
from app.web import pulse

bp = Blueprint("telemetry", __name__)


def _require_device(device_id: str) -> None:
    """404 unless the caller's tenant has this device."""
    with tenant_session() as session:
        get_or_404(session, Device, device_id)


def _unavailable(exc: TelemetryStoreError) -> Problem:
    return Problem(503, f"the telemetry store is unavailable: {exc}")


@bp.post("/devices/<device_id>/telemetry")
@operation(IngestedReading, 201, body=TelemetryIn, errors=(429,))
def ingest(device_id: str, body: TelemetryIn):
    """Ingest one telemetry reading (stored, then pushed to the live feed)"""
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
    return IngestedReading.of(reading, device_id=device_id)


@bp.get("/devices/<device_id>/telemetry")
@operation(Page[ReadingView], query=ListQuery)
def latest(device_id: str, query: ListQuery):
    """Latest telemetry of a device, newest first"""

    def fetch(after: tuple | None, count: int) -> list[Reading]:
        # Asked once the cursor is known to be good: a bad one is a 422 whatever the device.
        _require_device(device_id)
        try:
            return telemetry_store().latest(tenant_id(), device_id, count, before=after[0] if after else None)
        except TelemetryStoreError as exc:
            raise _unavailable(exc) from None

    return keyset_page(fetch, lambda reading: (reading.timestamp,), (datetime,), ReadingView.of, query)
