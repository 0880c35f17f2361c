"""Wording the chat-style channels (Slack, Teams, PagerDuty) share."""

from __future__ import annotations

from typing import Any

from app.status import Event

EVENT_WORDS = {Event.OPEN: "opened", Event.ACKNOWLEDGED: "acknowledged", Event.CLOSED: "closed", Event.ESCALATED: "escalated", Event.TEST: "test"}


def headline(payload: dict[str, Any]) -> str:
    """One line naming severity, event and message, e.g. `[CRITICAL] Alert opened: ...`.

    An escalation names its step: `[CRITICAL] Escalated (step 2): ...`.
    """
    event_type = payload.get("event_type", Event.OPEN)
    if event_type == Event.TEST:
        what = "Test notification"
    elif event_type == Event.ESCALATED:
        what = f"Escalated (step {payload.get('escalation_step') or '?'})"
    else:
        what = f"Alert {EVENT_WORDS.get(event_type, event_type.lower())}"
    return f"[{payload.get('severity_label', '')}] {what}: {payload.get('message') or ''}".strip()


ACKNOWLEDGE = "Acknowledge"


def ack_url(payload: dict[str, Any]) -> str | None:
    """The notification's acknowledge link, if it carries one (OPEN and ESCALATED do)."""
    url = payload.get("ack_url")
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None
