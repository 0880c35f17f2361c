"""PagerDuty Events API v2: alerts open, acknowledge and resolve PagerDuty incidents.

All three events of one alert share the dedup key `pulse-alert-<alert_id>`, so PagerDuty
folds them into one incident: OPEN triggers it, ACKNOWLEDGED acknowledges it, CLOSED resolves
it. A test send triggers an event with a dedup key of its own, so it never touches a real
alert's incident. Reference: https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
and .../acknowledge-events/, .../resolve-events/.

PagerDuty answers 202 on success; 400 means the event is invalid (its `errors` list says why,
and the shared classifier quotes the answer); 429 and 5xx are worth retrying.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, field_validator

from app.channels.base import (
    ChannelConfig,
    Notification,
    SendContext,
)
from app.channels.errors import PermanentError
from app.channels.formatting import headline
from app.channels.http import JsonPostSender
from app.severity import severity_label
from app.status import Event

# An escalation re-triggers the same incident (same dedup_key): PagerDuty's own escalation
# policy takes it from there.
EVENT_ACTIONS = {
    Event.OPEN: "trigger",
    Event.ACKNOWLEDGED: "acknowledge",
    Event.CLOSED: "resolve",
    Event.ESCALATED: "trigger",
    Event.TEST: "trigger",
}

# PagerDuty caps payload.summary at 1024 characters and rejects longer ones
# (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/).
SUMMARY_LIMIT = 1024


# PagerDuty's four event severities for Pulse's four levels (DESIGN §7).
PAGERDUTY_SEVERITIES = {"CRITICAL": "critical", "HIGH": "error", "MEDIUM": "warning", "LOW": "info"}


def pagerduty_severity(severity: int) -> str:
    """Pulse severity 0..5 as one of PagerDuty's four: critical, error, warning, info."""
    return PAGERDUTY_SEVERITIES[severity_label(severity)]


def dedup_key(notification: Notification) -> str:
    """One key per alert, shared by its trigger, acknowledge and resolve; a test send its own."""
    if notification.event_type == Event.TEST:
        return f"pulse-test-{notification.message_id.removeprefix('test-')}"
    return f"pulse-alert-{notification.payload.get('alert_id')}"


def truncate(text: str, limit: int) -> str:
    """Text cut to `limit` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pagerduty_event(integration_key: str, notification: Notification) -> dict[str, Any]:
    """The Events API v2 body for one notification."""
    payload = notification.payload
    event_type = notification.event_type
    if event_type not in EVENT_ACTIONS:
        raise PermanentError(f"PagerDuty: no event action for event type {event_type!r}")
    event: dict[str, Any] = {
        "routing_key": integration_key,
        "event_action": EVENT_ACTIONS[event_type],
        "dedup_key": dedup_key(notification),
    }
    if event["event_action"] != "trigger":
        # Acknowledge and resolve events carry only these three fields; PagerDuty ignores a
        # payload on them (https://developer.pagerduty.com/docs/events-api-v2/acknowledge-events/).
        return event
    details = {
        "alert_id": payload.get("alert_id"),
        "tenant_id": payload.get("tenant_id"),
        "site_id": payload.get("site_id"),
        "device_id": payload.get("device_id"),
        "alert_type": payload.get("alert_type"),
        "severity": payload.get("severity"),
        "severity_label": payload.get("severity_label"),
        "details": payload.get("details"),
    }
    body: dict[str, Any] = {
        "summary": truncate(headline(payload), SUMMARY_LIMIT),
        "source": str(payload.get("device_id") or "pulse"),
        "severity": pagerduty_severity(int(payload.get("severity") or 0)),
        "custom_details": details,
    }
    if payload.get("triggered_at"):
        body["timestamp"] = payload["triggered_at"]
    if payload.get("site_id"):
        body["group"] = str(payload["site_id"])
    if payload.get("alert_type"):
        body["class"] = str(payload["alert_type"])
    event["payload"] = body
    event["client"] = "Pulse"
    return event


class PagerDutyConfig(ChannelConfig):
    """The config of a PagerDuty channel: the Events API v2 integration (routing) key."""

    # The integration key is the credential: keep it out of validation messages too.
    model_config = ConfigDict(hide_input_in_errors=True)

    integration_key: str = Field(min_length=1, max_length=128)

    @field_validator("integration_key")
    @classmethod
    def _no_whitespace(cls, value: str) -> str:
        if any(character.isspace() for character in value):
            raise ValueError("must not contain whitespace (paste the Events API v2 integration key)")
        return value


class PagerDutySender(JsonPostSender):
    """Send one Events API v2 event to PagerDuty."""

    channel_type = "pagerduty"
    config_model = PagerDutyConfig
    secret_fields = ("integration_key",)
    service = "PagerDuty"

    def destination(self, config: PagerDutyConfig, context: SendContext) -> str:
        return context.settings.pagerduty_events_url

    def message(self, config: PagerDutyConfig, notification: Notification) -> dict[str, Any]:
        return pagerduty_event(config.integration_key, notification)

    def secrets(self, config: PagerDutyConfig, url: str) -> list[str]:
        return [config.integration_key]
