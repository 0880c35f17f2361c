"""Telemetry stores: where POST /devices/{id}/telemetry writes and the live feed reads.

`TELEMETRY_BACKEND` picks one: `sql`, the `telemetry` table in Pulse's own database (the
default), or `influxdb`, an InfluxDB 2.x bucket reached through influxdb-client. Both keep
the same contract (`TelemetryStore`), so the API and the live feed never know which is in use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from flask import Flask, current_app

from app.config import Settings
from app.db import Database
from app.payload import iso

Metrics = dict[str, float | int]


class TelemetryStoreError(Exception):
    """The store could not be reached, or refused the request; the data is not stored."""


@dataclass(frozen=True)
class Reading:
    """One telemetry sample of a device: when it was taken and its numeric metrics."""

    timestamp: datetime
    metrics: Metrics = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        """The JSON shape of the API and the live feed: `{timestamp, metrics}`."""
        return {"timestamp": iso(self.timestamp), "metrics": dict(self.metrics)}

    @classmethod
    def from_view(cls, data: dict[str, Any]) -> "Reading":
        """The reading a `view()` describes; ValueError if it does not describe one."""
        timestamp = as_utc(datetime.fromisoformat(data["timestamp"]))
        metrics = data["metrics"]
        if not isinstance(metrics, dict) or not all(is_metric_value(v) for v in metrics.values()):
            raise ValueError("metrics must map names to finite numbers")
        return cls(timestamp, metrics)


def as_utc(value: datetime) -> datetime:
    """`value` as an aware UTC datetime (a naive one is taken to be UTC already)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def is_metric_value(value: Any) -> bool:
    """A finite int or float (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class TelemetryStore(Protocol):
    """What a telemetry backend does. Every call is scoped to one tenant and device."""

    def write(self, tenant_id: str, device_id: str, reading: Reading) -> None:
        """Store one reading; TelemetryStoreError if the backend cannot take it."""

    def latest(
        self, tenant_id: str, device_id: str, limit: int, before: datetime | None = None, after: datetime | None = None
    ) -> list[Reading]:
        """Up to `limit` readings, newest first: strictly older than `before` and no older
        than `after`, when given."""

    def close(self) -> None:
        """Release connections."""


def make_store(settings: Settings, db: Database) -> TelemetryStore:
    """The store `settings.telemetry_backend` names; ValueError for an unknown or incomplete one."""
    backend = (settings.telemetry_backend or "sql").strip().lower()
    if backend == "sql":
        from app.telemetry.sql import SqlTelemetryStore

        return SqlTelemetryStore(db)
    if backend == "influxdb":
        from app.telemetry.influxdb import InfluxTelemetryStore

        missing = [
            name
            for name, value in (
                ("INFLUXDB_URL", settings.influxdb_url),
                ("INFLUXDB_ORG", settings.influxdb_org),
                ("INFLUXDB_BUCKET", settings.influxdb_bucket),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"TELEMETRY_BACKEND=influxdb needs {', '.join(missing)}")
        return InfluxTelemetryStore(
            url=settings.influxdb_url,
            token=settings.influxdb_token,
            org=settings.influxdb_org,
            bucket=settings.influxdb_bucket,
        )
    raise ValueError(f"TELEMETRY_BACKEND must be sql or influxdb, not {settings.telemetry_backend!r}")


def init_app(app: Flask) -> None:
    state = app.extensions["pulse"]
    app.extensions["telemetry"] = make_store(state.settings, state.db)


def telemetry_store() -> TelemetryStore:
    """The current app's telemetry store."""
    return current_app.extensions["telemetry"]
