"""Housekeeping the beat process schedules: how long to wait before a job counts as lost,
and what retention removes."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Alert, DeliveryLog, NotificationJob, TelemetryPoint
from app.status import UNSENT_JOB_STATUSES, AlertStatus, JobStatus


def sweep_grace(settings: Settings) -> timedelta:
    """How overdue a PENDING or RETRYING job must be before its message counts as lost.

    Two sweep intervals: long enough that a healthy queue has consumed the message, short
    enough that a lost one is re-sent within two minutes with the default settings.
    """
    return timedelta(seconds=2 * settings.sweep_interval_seconds)


def purge_old_records(session: Session, before: datetime) -> int:
    """Delete telemetry, and the delivered, throttled or suppressed jobs (with their log) of alerts
    closed before `before`. Failed jobs stay: the dead-letter queue is never purged."""
    settled = (
        select(NotificationJob.job_id)
        .join(Alert, Alert.alert_id == NotificationJob.alert_id)
        .where(
            Alert.status == AlertStatus.CLOSED,
            Alert.closed_at < before,
            NotificationJob.status.in_((JobStatus.DELIVERED, *UNSENT_JOB_STATUSES)),
        )
    )
    removed = session.execute(delete(DeliveryLog).where(DeliveryLog.job_id.in_(settled))).rowcount
    removed += session.execute(delete(NotificationJob).where(NotificationJob.job_id.in_(settled))).rowcount
    removed += session.execute(delete(TelemetryPoint).where(TelemetryPoint.ts < before)).rowcount
    return removed
