"""The Teams sender against a real HTTP receiver on 127.0.0.1 playing a Workflows or connector webhook."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pytest_httpserver import HTTPServer

from app.channels.base import Notification, SendContext
from app.channels.errors import PermanentError, TransientError
from app.channels.teams import TeamsConfig, TeamsSender
from app.config import DeliverySettings
from tests.support import sample_notification

WEBHOOK_PATH = "/workflows/a1b2c3d4e5f6/triggers/manual/paths/invoke"
WEBHOOK_QUERY = "api-version=2016-06-01&sig=TeAmSsEcReTsIgNaTuRe0123456789"

CONTEXT = SendContext(DeliverySettings(allow_private_destinations=True, timeout_seconds=3))

FACTS = [
    ("Severity", "CRITICAL"),
    ("Device", "sensor-17"),
    ("Alert type", "temperature_high"),
    ("Site", "plant-3"),
    ("Event", "opened"),
    ("Triggered at", "2025-03-01T12:00:00+00:00"),
]


notification = sample_notification


@pytest.fixture
def teams(http_peer):
    """The Teams stand-in with no expectations and an empty request log."""
    return http_peer


def send(server: HTTPServer, note: Notification | None = None, card_format: str = "adaptive"):
    config = TeamsConfig(webhook_url=server.url_for(WEBHOOK_PATH) + "?" + WEBHOOK_QUERY, format=card_format)
    return TeamsSender().send(config, note or notification(), CONTEXT)


def received_json(server: HTTPServer) -> dict:
    assert len(server.log) == 1, f"expected one request, got {len(server.log)}"
    request, _ = server.log[0]
    return request.get_json()


def test_teams_adaptive_format_posts_the_documented_adaptive_card_message(teams):
    teams.expect_request(WEBHOOK_PATH, method="POST").respond_with_data("", status=202)

    result = send(teams)

    assert result.status_code == 202
    request, _ = teams.log[0]
    assert request.headers["Content-Type"] == "application/json"
    assert request.args["sig"] == "TeAmSsEcReTsIgNaTuRe0123456789"
    assert received_json(teams) == {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {
                            "type": "TextBlock",
                            "text": "[CRITICAL] Alert opened: Temperature 81.5 C above 75 C",
                            "size": "Medium",
                            "weight": "Bolder",
                            "color": "Attention",
                            "wrap": True,
                        },
                        {"type": "TextBlock", "text": "Temperature 81.5 C above 75 C", "wrap": True},
                        {"type": "FactSet", "facts": [{"title": title, "value": value} for title, value in FACTS]},
                    ],
                },
            }
        ],
    }


def test_teams_messagecard_format_posts_the_connector_message_card(teams):
    teams.expect_request(WEBHOOK_PATH, method="POST").respond_with_data("1")

    result = send(teams, card_format="messagecard")

    assert result.status_code == 200
    assert received_json(teams) == {
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": "e94560",
        "summary": "[CRITICAL] Alert opened: Temperature 81.5 C above 75 C",
        "sections": [
            {
                "activityTitle": "[CRITICAL] Alert opened: Temperature 81.5 C above 75 C",
                "activityText": "Device: sensor-17 | Type: temperature_high",
                "facts": [{"name": name, "value": value} for name, value in FACTS],
            }
        ],
    }


@pytest.mark.parametrize(
    ("severity", "label", "text_colour", "theme_colour"),
    [
        (5, "CRITICAL", "Attention", "e94560"),
        (4, "CRITICAL", "Attention", "e94560"),
        (3, "HIGH", "Warning", "ff9800"),
        (2, "MEDIUM", "Good", "2196f3"),
        (0, "LOW", "Good", "2196f3"),
    ],
)
def test_teams_colour_follows_severity_in_both_formats(teams, severity, label, text_colour, theme_colour):
    teams.expect_request(WEBHOOK_PATH, method="POST").respond_with_data("1")

    send(teams, notification(severity=severity, severity_label=label), card_format="adaptive")
    send(teams, notification(severity=severity, severity_label=label), card_format="messagecard")

    adaptive, messagecard = (request.get_json() for request, _ in teams.log)
    assert adaptive["attachments"][0]["content"]["body"][0]["color"] == text_colour
    assert messagecard["themeColor"] == theme_colour


@pytest.mark.parametrize(
    ("event_type", "headline", "event_word"),
    [
        ("OPEN", "[CRITICAL] Alert opened: Temperature 81.5 C above 75 C", "opened"),
        ("ACKNOWLEDGED", "[CRITICAL] Alert acknowledged: Temperature 81.5 C above 75 C", "acknowledged"),
        ("CLOSED", "[CRITICAL] Alert closed: Temperature 81.5 C above 75 C", "closed"),
        ("TEST", "[CRITICAL] Test notification: Temperature 81.5 C above 75 C", "test"),
    ],
)
def test_teams_card_names_the_event(teams, event_type, headline, event_word):
    teams.expect_request(WEBHOOK_PATH, method="POST").respond_with_data("", status=202)

    send(teams, notification(event_type))

    body = received_json(teams)["attachments"][0]["content"]["body"]
    assert body[0]["text"] == headline
    assert {"title": "Event", "value": event_word} in body[2]["facts"]


@pytest.mark.parametrize(("status", "answer"), [(200, "1"), (200, ""), (202, ""), (200, '{"status": "ok"}')])
def test_teams_success_answers_are_ok(teams, status, answer):
    teams.expect_request(WEBHOOK_PATH).respond_with_data(answer, status=status)

    assert send(teams).status_code == status


CONNECTOR_REFUSAL = (
    "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error {status} "
    "with ContextId tcid=0,server=msgapi-production-eus-azsc2-4-170,cv=deadbeef.0.."
)


@pytest.mark.parametrize(
    ("reported", "error"),
    [(429, TransientError), (502, TransientError), (400, PermanentError), (403, PermanentError), (413, PermanentError)],
)
def test_teams_connector_200_reporting_a_refusal_is_classified_by_the_reported_status(teams, reported, error):
    teams.expect_request(WEBHOOK_PATH).respond_with_data(CONNECTOR_REFUSAL.format(status=reported), status=200)

    with pytest.raises(error) as caught:
        send(teams, card_format="messagecard")

    assert type(caught.value) is error
    assert f"HTTP error {reported}" in str(caught.value)
    assert caught.value.status_code == reported


def test_teams_connector_200_that_could_not_reach_teams_is_transient(teams):
    teams.expect_request(WEBHOOK_PATH).respond_with_data(
        "Webhook message delivery failed with error: Error contacting Microsoft Teams endpoint", status=200
    )

    with pytest.raises(TransientError):
        send(teams, card_format="messagecard")


def test_teams_429_with_retry_after_is_transient_with_that_delay(teams):
    teams.expect_request(WEBHOOK_PATH).respond_with_data("", status=429, headers={"Retry-After": "45"})

    with pytest.raises(TransientError) as caught:
        send(teams)

    assert caught.value.retry_after == 45


@pytest.mark.parametrize("status", [400, 403, 404, 410])
def test_teams_client_errors_are_permanent(teams, status):
    teams.expect_request(WEBHOOK_PATH).respond_with_data("WorkflowTriggerIsNotEnabled", status=status)

    with pytest.raises(PermanentError) as caught:
        send(teams)

    assert caught.value.status_code == status


def test_teams_error_never_contains_the_webhook_url_even_when_the_receiver_echoes_it(teams):
    teams.expect_request(WEBHOOK_PATH).respond_with_data(
        f"no flow at {WEBHOOK_PATH}?{WEBHOOK_QUERY}", status=404
    )

    with pytest.raises(PermanentError) as caught:
        send(teams)

    assert "TeAmSsEcReTsIgNaTuRe" not in str(caught.value)
    assert "a1b2c3d4e5f6" not in str(caught.value)
    assert "********" in str(caught.value)


def test_teams_declares_the_webhook_url_secret():
    assert TeamsSender.secret_fields == ("webhook_url",)
    assert TeamsSender.channel_type == "teams"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"webhook_url": "https://example.webhook.office.com/webhookb2/abc"}, "adaptive"),
        ({"webhook_url": "https://example.webhook.office.com/webhookb2/abc", "format": "messagecard"}, "messagecard"),
        ({"webhook_url": "https://example.webhook.office.com/webhookb2/abc", "format": "MessageCard"}, "messagecard"),
    ],
)
def test_teams_format_defaults_to_adaptive(config, expected):
    assert TeamsSender().validate_config(config).format == expected


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "webhook_url"),
        ({"webhook_url": "ftp://example.webhook.office.com/secretpart"}, "webhook_url"),
        ({"webhook_url": "example.webhook.office.com/secretpart"}, "webhook_url"),
        ({"webhook_url": "https://example.webhook.office.com/secretpart", "format": "html"}, "format"),
        ({"webhook_url": "https://example.webhook.office.com/secretpart", "color": "red"}, "color"),
    ],
)
def test_teams_bad_config_is_rejected_naming_the_field_without_echoing_the_url(config, field):
    with pytest.raises(ValidationError) as caught:
        TeamsSender().validate_config(config)

    assert [error["loc"] for error in caught.value.errors()] == [(field,)]
    assert "secretpart" not in str(caught.value)
