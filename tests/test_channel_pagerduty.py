"""The PagerDuty sender against a real HTTP receiver on 127.0.0.1 playing the Events API v2."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pytest_httpserver import HTTPServer

from app.channels.base import Notification, SendContext
from app.channels.errors import PermanentError, TransientError
from app.channels.pagerduty import PagerDutyConfig, PagerDutySender
from app.config import DeliverySettings
from tests.support import sample_notification

ENQUEUE_PATH = "/v2/enqueue"
INTEGRATION_KEY = "R0PULSEINTEGRATIONKEY0123456789a"
PAGERDUTY_ACCEPTED = {"status": "success", "message": "Event processed", "dedup_key": "pulse-alert-42"}


notification = sample_notification


@pytest.fixture
def pagerduty(http_peer):
    """The PagerDuty stand-in with no expectations and an empty request log."""
    return http_peer


def send(server: HTTPServer, note: Notification | None = None, key: str = INTEGRATION_KEY):
    context = SendContext(
        DeliverySettings(
            allow_private_destinations=True,
            timeout_seconds=3,
            pagerduty_events_url=server.url_for(ENQUEUE_PATH),
        )
    )
    return PagerDutySender().send(PagerDutyConfig(integration_key=key), note or notification(), context)


def received_json(server: HTTPServer) -> dict:
    assert len(server.log) == 1, f"expected one request, got {len(server.log)}"
    request, _ = server.log[0]
    return request.get_json()


def accept(server: HTTPServer) -> None:
    server.expect_request(ENQUEUE_PATH, method="POST").respond_with_json(PAGERDUTY_ACCEPTED, status=202)


def test_pagerduty_open_alert_sends_the_documented_trigger_event(pagerduty):
    accept(pagerduty)

    result = send(pagerduty)

    assert result.status_code == 202
    request, _ = pagerduty.log[0]
    assert request.headers["Content-Type"] == "application/json"
    assert received_json(pagerduty) == {
        "routing_key": INTEGRATION_KEY,
        "event_action": "trigger",
        "dedup_key": "pulse-alert-42",
        "payload": {
            "summary": "[CRITICAL] Alert opened: Temperature 81.5 C above 75 C",
            "source": "sensor-17",
            "severity": "critical",
            "timestamp": "2025-03-01T12:00:00+00:00",
            "group": "plant-3",
            "class": "temperature_high",
            "custom_details": {
                "alert_id": 42,
                "tenant_id": "acme",
                "site_id": "plant-3",
                "device_id": "sensor-17",
                "alert_type": "temperature_high",
                "severity": 4,
                "severity_label": "CRITICAL",
                "details": {"temperature": 81.5, "threshold": 75},
            },
        },
        "client": "Pulse",
    }


@pytest.mark.parametrize(("event_type", "action"), [("ACKNOWLEDGED", "acknowledge"), ("CLOSED", "resolve")])
def test_pagerduty_acknowledge_and_resolve_carry_only_key_action_and_dedup_key(pagerduty, event_type, action):
    accept(pagerduty)

    send(pagerduty, notification(event_type))

    assert received_json(pagerduty) == {
        "routing_key": INTEGRATION_KEY,
        "event_action": action,
        "dedup_key": "pulse-alert-42",
    }


def test_pagerduty_events_of_one_alert_share_one_dedup_key(pagerduty):
    accept(pagerduty)

    for event_type in ("OPEN", "ACKNOWLEDGED", "CLOSED"):
        send(pagerduty, notification(event_type))

    keys = [request.get_json()["dedup_key"] for request, _ in pagerduty.log]
    assert keys == ["pulse-alert-42"] * 3


def test_pagerduty_test_send_triggers_with_a_dedup_key_of_its_own(pagerduty):
    accept(pagerduty)

    send(pagerduty, notification("TEST", message_id="test-5f0c2a1e-9d7b-4c55-8a9e-0f3b1c2d4e5f"))

    event = received_json(pagerduty)
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "pulse-test-5f0c2a1e-9d7b-4c55-8a9e-0f3b1c2d4e5f"
    assert event["payload"]["summary"] == "[CRITICAL] Test notification: Temperature 81.5 C above 75 C"


@pytest.mark.parametrize(
    ("severity", "expected"),
    [(5, "critical"), (4, "critical"), (3, "error"), (2, "warning"), (1, "info"), (0, "info")],
)
def test_pagerduty_severity_is_mapped_to_the_four_pagerduty_levels(pagerduty, severity, expected):
    accept(pagerduty)

    send(pagerduty, notification(severity=severity))

    assert received_json(pagerduty)["payload"]["severity"] == expected


def test_pagerduty_summary_is_cut_to_the_1024_character_limit(pagerduty):
    accept(pagerduty)

    send(pagerduty, notification(message="x" * 3000))

    summary = received_json(pagerduty)["payload"]["summary"]
    assert len(summary) == 1024
    assert summary.startswith("[CRITICAL] Alert opened: xxx")
    assert summary.endswith("…")


def test_pagerduty_400_is_permanent_and_quotes_pagerduty_errors_without_the_key(pagerduty):
    pagerduty.expect_request(ENQUEUE_PATH).respond_with_json(
        {
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": ["Length of 'routing_key' is incorrect (should be 32 characters)"],
        },
        status=400,
    )

    with pytest.raises(PermanentError) as caught:
        send(pagerduty)

    assert "Length of 'routing_key' is incorrect" in str(caught.value)
    assert caught.value.status_code == 400
    assert INTEGRATION_KEY not in str(caught.value)


def test_pagerduty_answer_quoting_the_integration_key_is_redacted(pagerduty):
    pagerduty.expect_request(ENQUEUE_PATH).respond_with_data(f"unknown routing key {INTEGRATION_KEY}", status=400)

    with pytest.raises(PermanentError) as caught:
        send(pagerduty)

    assert INTEGRATION_KEY not in str(caught.value)
    assert "unknown routing key ********" in str(caught.value)


def test_pagerduty_429_with_retry_after_is_transient_with_that_delay(pagerduty):
    pagerduty.expect_request(ENQUEUE_PATH).respond_with_data("", status=429, headers={"Retry-After": "12"})

    with pytest.raises(TransientError) as caught:
        send(pagerduty)

    assert caught.value.retry_after == 12


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_pagerduty_throttling_and_server_errors_are_transient(pagerduty, status):
    pagerduty.expect_request(ENQUEUE_PATH).respond_with_data("", status=status)

    with pytest.raises(TransientError) as caught:
        send(pagerduty)

    assert caught.value.status_code == status


def test_pagerduty_declares_the_integration_key_secret():
    assert PagerDutySender.secret_fields == ("integration_key",)
    assert PagerDutySender.channel_type == "pagerduty"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "integration_key"),
        ({"integration_key": ""}, "integration_key"),
        ({"integration_key": "R0PULSE secretpart 0123456789abc"}, "integration_key"),
        ({"integration_key": "secretpart" * 20}, "integration_key"),
        ({"integration_key": INTEGRATION_KEY, "service": "ops"}, "service"),
    ],
)
def test_pagerduty_bad_config_is_rejected_naming_the_field_without_echoing_the_key(config, field):
    with pytest.raises(ValidationError) as caught:
        PagerDutySender().validate_config(config)

    assert [error["loc"] for error in caught.value.errors()] == [(field,)]
    assert "secretpart" not in str(caught.value)
