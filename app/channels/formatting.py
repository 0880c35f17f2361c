"""Wording the chat-style channels (Slack, Teams, PagerDuty) share."""

from __future__ import annotations

from typing import Any

from app.status import Event

EVENT_WORDS = {Event.OPEN: "opened", Event.ACKNOWLEDGED: "acknowledged", Event.CLOSED: "closed", Event.ESCALATED: "escalated", Event.TEST: "test"}


def headline(payload: dict[str, Any]) -> str:
    """One line naming severity, event and message, e.g. `[CRITICAL] Alert opened: ...`."""
    event_type = payload.get("event_type", Event.OPEN)
    what = "Test notification" if event_type == Event.TEST else f"Alert {EVENT_WORDS.get(event_type, event_type.lower())}"
    return f"[{payload.get('severity_label', '')}] {what}: {payload.get('message') or ''}".strip()
