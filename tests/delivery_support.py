"""Helpers for tests of the delivery core at the domain level, against the real PostgreSQL.

`quiet_app` is the API with a broker nobody listens to, so the jobs its alerts create wait in
the database for the test to claim, age and record by hand; no worker can touch them.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select, text, update

from app import create_app
from app.config import DeliverySettings, Settings
from app.delivery.records import AttemptRecord
from app.models import DeliveryLog, NotificationJob

# Nothing listens here: the API's messages are refused and its jobs wait in the database.
DEAD_BROKER = "redis://127.0.0.1:9/0"


def make_quiet_app():
    return create_app(replace(Settings.from_env(), broker_url=DEAD_BROKER), test_config={"TESTING": True})


def job(db, job_id: int) -> NotificationJob:
    with db.system_scope("tests") as session:
        return session.get(NotificationJob, job_id)


def log_rows(db, job_id: int) -> list[DeliveryLog]:
    with db.system_scope("tests") as session:
        return session.scalars(select(DeliveryLog).where(DeliveryLog.job_id == job_id).order_by(DeliveryLog.attempt)).all()


def age(db, job_id: int, seconds: float, column: str = "next_attempt_at") -> None:
    """Move one of a job's times `seconds` into the past: as if that much time had gone by."""
    with db.system_scope("tests") as session:
        session.execute(
            update(NotificationJob)
            .where(NotificationJob.job_id == job_id)
            .values({column: getattr(NotificationJob, column) - text(f"interval '{float(seconds)} seconds'")})
        )


def outcome(claimed, success: bool, *, retry_in: float | None = None, detail: str | None = None, **changes) -> AttemptRecord:
    """The record an attempt at `claimed` would produce."""
    return AttemptRecord(
        job_id=claimed.job_id,
        tenant_id=claimed.tenant_id,
        alert_id=claimed.alert_id,
        channel_id=claimed.channel_id,
        channel_type="webhook",
        queue=claimed.queue,
        attempt=claimed.attempt,
        budget_attempt=claimed.budget_attempt,
        success=success,
        duration_ms=12.5,
        status_code=200 if success else 503,
        detail=detail or ("ok" if success else "webhook receiver answered 503: busy"),
        retry_in=retry_in,
        **changes,
    )


def settings(**changes) -> DeliverySettings:
    """The test run's delivery settings, changed where a test says."""
    return replace(Settings.from_env().delivery, **changes)
