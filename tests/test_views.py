"""The response models in plain Python (app.views): what a row looks like once answered."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from app.delivery.admission import Health
from app.models import Alert, NotificationChannel, NotificationJob
from app.secrets import MASK, SecretBox
from app.views import AlertView, AlertWithJobs, ChannelView, HealthView, JobView, ViewError, channel_view

T0 = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


def alert(**changes) -> Alert:
    fields = dict(
        alert_id=7, tenant_id="t-1", device_id="pump", site_id=None, alert_type="heat", severity=3, message="hot",
        details={"k": [1]}, fingerprint="fp", status="OPEN", triggered_at=T0, acknowledged_at=None, closed_at=None,
    )
    return Alert(**{**fields, **changes})


def job(**changes) -> NotificationJob:
    fields = dict(
        job_id=11, tenant_id="t-1", alert_id=7, channel_id=3, rule_id=None, event_type="OPEN", escalation_step=0, status="PENDING",
        attempts=0, next_attempt_at=T0 + timedelta(seconds=30), last_error=None, payload={"job_id": None, "alert_id": 7},
        created_at=T0, delivered_at=None,
    )
    return NotificationJob(**{**fields, **changes})


def test_times_are_iso_8601_with_a_utc_offset():
    answered = AlertView.of(alert(acknowledged_at=T0 + timedelta(minutes=1))).model_dump(mode="json")
    assert answered["triggered_at"] == "2026-06-01T12:00:00.123456+00:00"
    assert answered["acknowledged_at"] == "2026-06-01T12:01:00.123456+00:00"
    assert answered["closed_at"] is None


def test_an_alert_carries_its_severity_label_and_an_answer_its_jobs_queued():
    answered = AlertWithJobs.of(AlertView.of(alert(severity=4)), jobs_queued=2).model_dump(mode="json")
    assert (answered["severity_label"], answered["jobs_queued"], answered["status"]) == ("CRITICAL", 2, "OPEN")


@pytest.mark.parametrize(
    "status, shown",
    [("PENDING", True), ("SENDING", True), ("RETRYING", True), ("DELIVERED", False), ("FAILED", False), ("THROTTLED", False)],
)
def test_only_a_job_still_to_be_sent_shows_its_next_attempt(status, shown):
    answered = JobView.of(job(status=status)).model_dump(mode="json")
    assert (answered["next_attempt_at"] is not None) is shown


def test_a_job_answers_the_payload_its_channel_is_sent():
    assert JobView.of(job()).model_dump(mode="json")["payload"] == {"job_id": 11, "alert_id": 7}


def test_an_http_channel_comes_back_as_webhook_with_its_secrets_masked():
    box = SecretBox("test-secret-key")
    channel = NotificationChannel(
        channel_id=3, tenant_id="t-1", name="hook", channel_type="http",
        config={"url": "http://127.0.0.1:9/hook", "method": "POST", "headers": {}},
        encrypted_secrets=box.encrypt({"secret": "s3cret"}), is_enabled=True, created_at=T0, updated_at=T0,
    )
    answered = channel_view(channel, box).model_dump(mode="json")
    assert answered["channel_type"] == "webhook"
    assert answered["config"]["secret"] == MASK
    assert "s3cret" not in str(answered)
    assert ChannelView.of(channel, config={}, health=HealthView.of(Health())).channel_type == "webhook"


def test_a_row_its_view_cannot_describe_is_a_view_error_not_a_validation_problem():
    with pytest.raises(ViewError, match="AlertView"):
        AlertView.of(alert(status="SLEEPING"))
