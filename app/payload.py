"""The notification payload shared by every channel (DESIGN §7), and JSON views of rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.models import Alert
from app.severity import severity_label


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with a UTC offset, or None."""
    return value.isoformat() if value is not None else None


def notification_payload(alert: Alert, event_type: str, job_id: int | None) -> dict[str, Any]:
    """What a channel delivers for one alert event; `details` exactly as posted."""
    return {
        "alert_id": alert.alert_id,
        "alert_type": alert.alert_type,
        "severity": alert.severity,
        "severity_label": severity_label(alert.severity),
        "device_id": alert.device_id,
        "site_id": alert.site_id,
        "tenant_id": alert.tenant_id,
        "message": alert.message,
        "details": alert.details,
        "triggered_at": iso(alert.triggered_at),
        "event_type": event_type,
        "job_id": job_id,
    }
