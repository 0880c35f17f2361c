"""TELEMETRY_BACKEND=sql: readings in the `telemetry` table of Pulse's own database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.db import Database
from app.models import TelemetryPoint
from app.telemetry import Reading, TelemetryStoreError


class SqlTelemetryStore:
    """Readings as rows, one per sample, read back through the (tenant, device, ts) index."""

    def __init__(self, db: Database):
        self._db = db

    def write(self, tenant_id: str, device_id: str, reading: Reading) -> None:
        try:
            with self._db.session(tenant_id) as session:
                session.add(
                    TelemetryPoint(
                        tenant_id=tenant_id, device_id=device_id, ts=reading.timestamp, metrics=dict(reading.metrics)
                    )
                )
        except OperationalError as exc:
            raise TelemetryStoreError(f"database unavailable: {type(exc.orig).__name__}") from exc

    def latest(
        self, tenant_id: str, device_id: str, limit: int, before: datetime | None = None, after: datetime | None = None
    ) -> list[Reading]:
        stmt = select(TelemetryPoint.ts, TelemetryPoint.metrics).where(
            TelemetryPoint.tenant_id == tenant_id, TelemetryPoint.device_id == device_id
        )
        if before is not None:
            stmt = stmt.where(TelemetryPoint.ts < before)
        if after is not None:
            stmt = stmt.where(TelemetryPoint.ts >= after)
        stmt = stmt.order_by(TelemetryPoint.ts.desc(), TelemetryPoint.id.desc()).limit(limit)
        try:
            with self._db.session(tenant_id) as session:
                rows = session.execute(stmt).all()
        except OperationalError as exc:
            raise TelemetryStoreError(f"database unavailable: {type(exc.orig).__name__}") from exc
        return [Reading(ts, metrics) for ts, metrics in rows]

    def close(self) -> None:
        """The database belongs to the app; nothing of its own to release."""
