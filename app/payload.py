"""The notification payload shared by every channel (DESIGN §7): its shape, declared once.

`NotificationPayload` names the fields; `PAYLOAD_FIELDS` is that list, for whoever needs it
(the email templates may use exactly these names). `notification_payload()` builds the payload
of an alert event, and that of a test send (`POST /channels/{id}/test`) from a
`ChannelTestAlert`, so the two can never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from app.models import Alert
from app.severity import severity_label
from app.status import Event


class NotificationPayload(TypedDict):
    """What a channel delivers about one alert event; `details` exactly as posted."""

    alert_id: int | None
    alert_type: str
    severity: int
    severity_label: str
    device_id: str
    site_id: str | None
    tenant_id: str
    message: str
    details: Any
    triggered_at: str | None
    event_type: str
    job_id: int | None
    # The escalation step (1-based) of an ESCALATED event; 0 for the others.
    escalation_step: int
    # OPEN and ESCALATED: the acknowledge link of the job's channel, added when it is sent.
    ack_url: str | None


PAYLOAD_FIELDS: tuple[str, ...] = tuple(NotificationPayload.__annotations__)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with a UTC offset, or None."""
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class ChannelTestAlert:
    """The alert a test send is about: a medium alert of a device that does not exist."""

    tenant_id: str
    message: str
    details: dict[str, Any]
    triggered_at: datetime
    alert_id: None = None
    alert_type: str = Event.TEST
    severity: int = 2
    device_id: str = "pulse-test-device"
    site_id: None = None


def notification_payload(
    alert: Alert | ChannelTestAlert, event_type: str, job_id: int | None, escalation_step: int = 0
) -> NotificationPayload:
    """What a channel delivers for one alert event; the severity label is derived, never given."""
    return NotificationPayload(
        alert_id=alert.alert_id,
        alert_type=alert.alert_type,
        severity=alert.severity,
        severity_label=severity_label(alert.severity),
        device_id=alert.device_id,
        site_id=alert.site_id,
        tenant_id=alert.tenant_id,
        message=alert.message,
        details=alert.details,
        triggered_at=iso(alert.triggered_at),
        event_type=event_type,
        job_id=job_id,
        escalation_step=escalation_step,
        ack_url=None,
    )


def channel_test_payload(tenant_id: str, channel_name: str, message_id: str, now: datetime) -> NotificationPayload:
    """A notification that says it is a test, in the shape every channel delivers."""
    alert = ChannelTestAlert(
        tenant_id=tenant_id,
        message=f"Test notification from Pulse for channel {channel_name!r}",
        details={"test": True, "test_id": message_id},
        triggered_at=now,
    )
    return notification_payload(alert, Event.TEST, None)
