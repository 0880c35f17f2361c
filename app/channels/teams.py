"""Microsoft Teams: an Adaptive Card for a Workflows webhook, or a legacy connector MessageCard.

`adaptive` (the default) posts the message envelope a Teams Workflows "post to a channel when
a webhook request is received" flow expects: one attachment holding an Adaptive Card 1.4
(https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using#send-adaptive-cards-using-an-incoming-webhook).
`messagecard` posts the seeds' MessageCard for Office 365 connector webhooks.

Workflows answer 202 (or 200); connectors answer 200 with the body `1`. Connectors also answer
200 when Teams refused the message, with the refusal in the body:
`Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429
with ContextId ...` (Microsoft's explanation: https://github.com/MicrosoftDocs/msteams-docs/issues/1810,
https://github.com/MicrosoftDocs/msteams-docs/issues/4145). Such an answer is classified by
the status it reports, so a throttled post is retried and a refused card is not.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, field_validator

from app.channels.base import (
    ChannelConfig,
    Notification,
)
from app.channels.destinations import DestinationUrl
from app.channels.errors import TransientError
from app.channels.formatting import ACKNOWLEDGE, EVENT_WORDS, ack_url, headline
from app.channels.http import HttpAnswer, JsonPostSender, classify, excerpt
from app.severity import level_of
from app.status import Event

ADAPTIVE_CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
# 1.4 is the newest version every Teams client renders (Teams mobile lags behind desktop on 1.5).
ADAPTIVE_CARD_VERSION = "1.4"

# The Adaptive Card TextBlock colour nearest to each colour of the severity palette
# (https://adaptivecards.io/explorer/TextBlock.html): red, orange, and the calm blue.
TEXT_COLOURS = {"#e94560": "Attention", "#ff9800": "Warning", "#2196f3": "Good"}

CONNECTOR_FAILURE = "Webhook message delivery failed"
_REPORTED_STATUS = re.compile(r"Microsoft Teams endpoint returned HTTP error (\d{3})")


def theme_colour(severity: int) -> str:
    """A MessageCard `themeColor`: the level's colour as bare hex."""
    return level_of(severity).colour.removeprefix("#")


def text_colour(severity: int) -> str:
    """An Adaptive Card TextBlock colour for the level's colour."""
    return TEXT_COLOURS.get(level_of(severity).colour, "Default")


def _facts(payload: dict[str, Any]) -> list[tuple[str, str]]:
    event_type = payload.get("event_type", Event.OPEN)
    facts = [
        ("Severity", str(payload.get("severity_label", ""))),
        ("Device", str(payload.get("device_id") or "unknown")),
        ("Alert type", str(payload.get("alert_type") or "")),
    ]
    if payload.get("site_id"):
        facts.append(("Site", str(payload["site_id"])))
    facts.append(("Event", EVENT_WORDS.get(event_type, event_type.lower())))
    if payload.get("triggered_at"):
        facts.append(("Triggered at", str(payload["triggered_at"])))
    return facts


def adaptive_card_message(payload: dict[str, Any]) -> dict[str, Any]:
    """The Workflows webhook body: a message with one Adaptive Card attachment."""
    severity = int(payload.get("severity") or 0)
    card = {
        "$schema": ADAPTIVE_CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": ADAPTIVE_CARD_VERSION,
        "body": [
            {
                "type": "TextBlock",
                "text": headline(payload),
                "size": "Medium",
                "weight": "Bolder",
                "color": text_colour(severity),
                "wrap": True,
            },
            {"type": "TextBlock", "text": str(payload.get("message") or ""), "wrap": True},
            {"type": "FactSet", "facts": [{"title": title, "value": value} for title, value in _facts(payload)]},
        ],
    }
    link = ack_url(payload)
    if link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": ACKNOWLEDGE, "url": link}]
    return {
        "type": "message",
        "attachments": [{"contentType": ADAPTIVE_CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


def message_card(payload: dict[str, Any]) -> dict[str, Any]:
    """The connector webhook body: the seeds' MessageCard, with the alert's facts added."""
    severity = int(payload.get("severity") or 0)
    card: dict[str, Any] = {
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": theme_colour(severity),
        "summary": headline(payload),
        "sections": [
            {
                "activityTitle": headline(payload),
                "activityText": f"Device: {payload.get('device_id') or 'unknown'} | Type: {payload.get('alert_type') or ''}",
                "facts": [{"name": name, "value": value} for name, value in _facts(payload)],
            }
        ],
    }
    link = ack_url(payload)
    if link:
        card["potentialAction"] = [{"@type": "OpenUri", "name": ACKNOWLEDGE, "targets": [{"os": "default", "uri": link}]}]
    return card


def check_teams_answer(answer: HttpAnswer) -> None:
    """A connector's 200 that reports a refused delivery fails by the status it reports."""
    body = answer.text.strip()
    if not body.startswith(CONNECTOR_FAILURE):
        return
    reported = _REPORTED_STATUS.search(body)
    if reported is None:
        # "Error contacting Microsoft Teams endpoint": Teams was unreachable from the connector.
        raise TransientError(f"Teams answered {answer.status}: {excerpt(body)}", status_code=answer.status)
    classify(int(reported.group(1)), answer.headers, body, f"Teams (inside a {answer.status} answer)")


class TeamsConfig(ChannelConfig):
    """The config of a Teams channel: the webhook URL and the card format it expects."""

    # The webhook URL is the credential: keep it out of validation messages too.
    model_config = ConfigDict(hide_input_in_errors=True)

    webhook_url: DestinationUrl
    format: Literal["adaptive", "messagecard"] = "adaptive"


    @field_validator("format", mode="before")
    @classmethod
    def _lower(cls, value):
        return value.lower() if isinstance(value, str) else value


class TeamsSender(JsonPostSender):
    """Post an Adaptive Card (or a MessageCard) to a Teams webhook."""

    channel_type = "teams"
    config_model = TeamsConfig
    service = "Teams"

    def message(self, config: TeamsConfig, notification: Notification) -> dict[str, Any]:
        build = adaptive_card_message if config.format == "adaptive" else message_card
        return build(notification.payload)

    def check_answer(self, answer: HttpAnswer) -> None:
        check_teams_answer(answer)
