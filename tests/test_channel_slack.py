"""The Slack sender against a real HTTP receiver on 127.0.0.1 playing Slack's incoming webhook."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pytest_httpserver import HTTPServer

from app.channels.base import Notification, SendContext
from app.channels.errors import PermanentError, TransientError
from app.channels.slack import SlackConfig, SlackSender
from app.config import DeliverySettings
from tests.support import sample_notification

WEBHOOK_PATH = "/services/T0PULSE01/B0PULSE02/q9XsEcReTtOkEn1234567890"

CONTEXT = SendContext(DeliverySettings(allow_private_destinations=True, timeout_seconds=3))


notification = sample_notification


@pytest.fixture
def slack(http_peer):
    """The Slack stand-in with no expectations and an empty request log."""
    return http_peer


def config_for(server: HTTPServer) -> SlackConfig:
    return SlackConfig(webhook_url=server.url_for(WEBHOOK_PATH))


def send(server: HTTPServer, note: Notification | None = None):
    return SlackSender().send(config_for(server), note or notification(), CONTEXT)


def received_json(server: HTTPServer) -> dict:
    assert len(server.log) == 1, f"expected one request, got {len(server.log)}"
    request, _ = server.log[0]
    return request.get_json()


def test_slack_posts_the_documented_incoming_webhook_message(slack):
    slack.expect_request(WEBHOOK_PATH, method="POST").respond_with_data("ok")

    result = send(slack)

    assert result.status_code == 200
    request, _ = slack.log[0]
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert received_json(slack) == {
        "text": "[CRITICAL] Alert opened: Temperature 81.5 C above 75 C",
        "attachments": [
            {
                "color": "#e94560",
                "fallback": "[CRITICAL] Alert opened: Temperature 81.5 C above 75 C",
                "text": "Temperature 81.5 C above 75 C",
                "fields": [
                    {"title": "Severity", "value": "CRITICAL", "short": True},
                    {"title": "Event", "value": "opened", "short": True},
                    {"title": "Device", "value": "sensor-17", "short": True},
                    {"title": "Alert type", "value": "temperature_high", "short": True},
                    {"title": "Site", "value": "plant-3", "short": True},
                ],
                "footer": "Pulse alert 42",
                "ts": 1740830400,
            }
        ],
    }


@pytest.mark.parametrize(
    ("event_type", "event_word", "headline"),
    [
        ("OPEN", "opened", "[CRITICAL] Alert opened: Temperature 81.5 C above 75 C"),
        ("ACKNOWLEDGED", "acknowledged", "[CRITICAL] Alert acknowledged: Temperature 81.5 C above 75 C"),
        ("CLOSED", "closed", "[CRITICAL] Alert closed: Temperature 81.5 C above 75 C"),
        ("TEST", "test", "[CRITICAL] Test notification: Temperature 81.5 C above 75 C"),
    ],
)
def test_slack_message_names_the_event(slack, event_type, event_word, headline):
    slack.expect_request(WEBHOOK_PATH, method="POST").respond_with_data("ok")

    send(slack, notification(event_type))

    message = received_json(slack)
    assert message["text"] == headline
    assert {"title": "Event", "value": event_word, "short": True} in message["attachments"][0]["fields"]


@pytest.mark.parametrize(
    ("severity", "label", "colour"),
    [(5, "CRITICAL", "#e94560"), (4, "CRITICAL", "#e94560"), (3, "HIGH", "#ff9800"), (2, "MEDIUM", "#2196f3"), (0, "LOW", "#2196f3")],
)
def test_slack_attachment_colour_follows_severity(slack, severity, label, colour):
    slack.expect_request(WEBHOOK_PATH, method="POST").respond_with_data("ok")

    send(slack, notification(severity=severity, severity_label=label))

    attachment = received_json(slack)["attachments"][0]
    assert attachment["color"] == colour
    assert {"title": "Severity", "value": label, "short": True} in attachment["fields"]


def test_slack_escapes_control_characters_so_alert_text_cannot_mention_or_link(slack):
    slack.expect_request(WEBHOOK_PATH, method="POST").respond_with_data("ok")

    send(slack, notification(message="<!channel> pressure > 3 bar & <https://evil.example|click>"))

    message = received_json(slack)
    escaped = "&lt;!channel&gt; pressure &gt; 3 bar &amp; &lt;https://evil.example|click&gt;"
    assert message["attachments"][0]["text"] == escaped
    assert message["text"] == f"[CRITICAL] Alert opened: {escaped}"


def test_slack_429_with_retry_after_is_transient_with_that_delay(slack):
    slack.expect_request(WEBHOOK_PATH).respond_with_data("rate_limited", status=429, headers={"Retry-After": "30"})

    with pytest.raises(TransientError) as caught:
        send(slack)

    assert caught.value.retry_after == 30
    assert caught.value.status_code == 429


def test_slack_500_rollup_error_is_transient(slack):
    slack.expect_request(WEBHOOK_PATH).respond_with_data("rollup_error", status=500)

    with pytest.raises(TransientError):
        send(slack)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (404, "no_service"),
        (404, "channel_not_found"),
        (410, "channel_is_archived"),
        (403, "invalid_token"),
        (403, "action_prohibited"),
        (403, "posting_to_general_channel_denied"),
        (400, "invalid_payload"),
        (404, "team_disabled"),
    ],
)
def test_slack_documented_error_is_permanent_and_names_the_code_not_the_url(slack, status, code):
    slack.expect_request(WEBHOOK_PATH).respond_with_data(code, status=status)

    with pytest.raises(PermanentError) as caught:
        send(slack)

    assert code in str(caught.value)
    assert caught.value.status_code == status
    assert "q9XsEcReTtOkEn" not in str(caught.value)


@pytest.mark.parametrize("code", ["no_service", "channel_is_archived", "invalid_payload"])
def test_slack_error_code_in_a_200_answer_is_permanent(slack, code):
    slack.expect_request(WEBHOOK_PATH).respond_with_data(code, status=200)

    with pytest.raises(PermanentError) as caught:
        send(slack)

    assert code in str(caught.value)


def test_slack_error_never_contains_the_webhook_url_even_when_the_receiver_echoes_it(slack):
    slack.expect_request(WEBHOOK_PATH).respond_with_data(
        f"The requested URL {WEBHOOK_PATH} was not found on this server", status=404
    )

    with pytest.raises(PermanentError) as caught:
        send(slack)

    assert "q9XsEcReTtOkEn" not in str(caught.value)
    assert "B0PULSE02" not in str(caught.value)
    assert "********" in str(caught.value)


def test_slack_declares_the_webhook_url_secret():
    assert SlackSender.secret_fields == ("webhook_url",)
    assert SlackSender.channel_type == "slack"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "webhook_url"),
        ({"webhook_url": "ftp://hooks.slack.com/services/T0/B0/secretpart"}, "webhook_url"),
        ({"webhook_url": "hooks.slack.com/services/T0/B0/secretpart"}, "webhook_url"),
        ({"webhook_url": "https:///services/T0/B0/secretpart"}, "webhook_url"),
        ({"webhook_url": "https://hooks.slack.com/services/T0/B0/secret part"}, "webhook_url"),
        ({"webhook_url": "https://hooks.slack.com/services/T0/B0/secretpart", "channel": "#ops"}, "channel"),
    ],
)
def test_slack_bad_config_is_rejected_naming_the_field_without_echoing_the_url(config, field):
    with pytest.raises(ValidationError) as caught:
        SlackSender().validate_config(config)

    assert [error["loc"] for error in caught.value.errors()] == [(field,)]
    assert "secretpart" not in str(caught.value)


def test_slack_accepts_an_https_webhook_url():
    config = SlackSender().validate_config({"webhook_url": "https://hooks.slack.com/services/T0/B0/abc"})

    assert config.webhook_url == "https://hooks.slack.com/services/T0/B0/abc"
