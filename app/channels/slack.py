"""Slack incoming webhooks: one message per alert event, coloured by severity.

The message is a `text` line (what notifications and screen readers show) and one legacy
attachment carrying the severity colour and the alert's facts as fields. Slack answers
200 `ok`; its documented errors are a 4xx status with a bare error code as the body
(https://api.slack.com/messaging/webhooks#handling_errors), which the shared classifier
already reports as permanent with the code in the message. Slack's 429 carries
`Retry-After` and is retried after that delay.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict

from app.channels.base import (
    ChannelConfig,
    Notification,
)
from app.channels.destinations import DestinationUrl
from app.channels.errors import PermanentError
from app.channels.formatting import ACKNOWLEDGE, EVENT_WORDS, ack_url, headline
from app.channels.http import HttpAnswer, JsonPostSender
from app.severity import level_of
from app.status import Event

# Slack's documented error bodies of incoming webhooks
# (https://api.slack.com/messaging/webhooks#handling_errors): a dead webhook (revoked, its channel
# deleted or archived, its token invalid, posting there forbidden) or a message Slack refuses.
# Slack sends them with a 400, 403, 404 or 410 status, which is permanent already; a 2xx whose
# body is one of them is a failure too, since Slack's success answer is `ok`.
SLACK_ERROR_CODES = frozenset(
    {
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "channel_not_found",
        "channel_is_archived",
        "invalid_token",
        "action_prohibited",
        "posting_to_general_channel_denied",
        "user_not_found",
        "invalid_payload",
        "missing_text_or_fallback_or_attachments",
        "no_text",
        "too_many_attachments",
    }
)


def escape(text: Any) -> str:
    """Slack's control characters escaped, so alert text cannot form links or @-mentions.

    https://api.slack.com/reference/surfaces/formatting#escaping
    """
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def severity_colour(severity: int) -> str:
    """The attachment colour of a severity 0..5: the colour of its level."""
    return level_of(severity).colour


def _epoch(timestamp: str | None) -> int | None:
    if not timestamp:
        return None
    try:
        return int(datetime.fromisoformat(timestamp).timestamp())
    except ValueError:
        return None


def slack_message(payload: dict[str, Any]) -> dict[str, Any]:
    """The incoming-webhook body for one notification payload."""
    event_type = payload.get("event_type", Event.OPEN)
    fields = [
        {"title": "Severity", "value": escape(payload.get("severity_label", "")), "short": True},
        {"title": "Event", "value": EVENT_WORDS.get(event_type, event_type.lower()), "short": True},
        {"title": "Device", "value": escape(payload.get("device_id") or "unknown"), "short": True},
        {"title": "Alert type", "value": escape(payload.get("alert_type") or ""), "short": True},
    ]
    if payload.get("site_id"):
        fields.append({"title": "Site", "value": escape(payload["site_id"]), "short": True})
    attachment: dict[str, Any] = {
        "color": severity_colour(int(payload.get("severity") or 0)),
        "fallback": escape(headline(payload)),
        "text": escape(payload.get("message") or ""),
        "fields": fields,
        "footer": f"Pulse alert {payload.get('alert_id')}",
    }
    timestamp = _epoch(payload.get("triggered_at"))
    if timestamp is not None:
        attachment["ts"] = timestamp
    link = ack_url(payload)
    if link:
        # Slack's link syntax `<url|text>`: the URL is ours and URL-safe, no escaping needed.
        attachment["text"] = f"{attachment['text']}\n<{link}|{ACKNOWLEDGE}>".lstrip("\n")
    return {"text": escape(headline(payload)), "attachments": [attachment]}


def check_slack_answer(answer: HttpAnswer) -> None:
    """A 2xx whose body is one of Slack's error codes is a permanent failure."""
    code = answer.text.strip()
    if code in SLACK_ERROR_CODES:
        raise PermanentError(f"Slack answered {answer.status}: {code}", status_code=answer.status)


class SlackConfig(ChannelConfig):
    """The config of a Slack channel: the incoming-webhook URL Slack gave."""

    # The webhook URL is the credential: keep it out of validation messages too.
    model_config = ConfigDict(hide_input_in_errors=True)

    webhook_url: DestinationUrl


class SlackSender(JsonPostSender):
    """Post an incoming-webhook message to Slack."""

    channel_type = "slack"
    config_model = SlackConfig
    service = "Slack"
    content_type = "application/json; charset=utf-8"

    def message(self, config: SlackConfig, notification: Notification) -> dict[str, Any]:
        return slack_message(notification.payload)

    def check_answer(self, answer: HttpAnswer) -> None:
        check_slack_answer(answer)
