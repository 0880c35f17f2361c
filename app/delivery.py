"""One delivery attempt of a notification job, and everything the job's status records.

The database is the source of truth: a job is claimed atomically before it is sent (a
duplicate message never sends it twice at once, a DELIVERED job is never sent again), its
attempt count lives in the row (so the dead-letter budget survives lost messages and
restarts), and the sweeper finds any job whose message was lost.

Called by the Celery task and its results hook; plain Python, testable without Celery.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.channels import (
    DeliveryError,
    Notification,
    PermanentError,
    SendContext,
    TransientError,
    get_sender,
)
from app.config import DeliverySettings
from app.db import Database
from app.models import DeliveryLog, NotificationChannel, NotificationJob, utcnow
from app.secrets import SecretBox, channel_config
from app.status import WAITING_JOB_STATUSES, JobStatus

# How late a retry message may be compared with the job's schedule and still be let in;
# Celery's ETA and our clock disagree by milliseconds, not seconds.
SCHEDULE_TOLERANCE = timedelta(seconds=2)


class AttemptExhausted(PermanentError):
    """The last allowed attempt failed with a transient error: the job is dead-lettered."""


@dataclass
class AttemptOutcome:
    """A finished attempt, for the results hook: what to write to the log and the job."""

    job_id: int
    attempt: int
    status_code: int | None
    duration_ms: float
    detail: str | None = None


def claim_lease(settings: DeliverySettings) -> timedelta:
    """How long a claimed job stays SENDING before the sweeper may assume its worker died.

    Well above one attempt's worst case (an SMTP send makes several round trips, each bounded
    by the timeout), so a slow attempt is never sent a second time alongside itself.
    """
    return timedelta(seconds=settings.timeout_seconds * 6 + 5)


def retry_delay(attempt: int, settings: DeliverySettings, retry_after: float | None = None, rng=random) -> float:
    """Seconds before the attempt after `attempt` (1-based): exponential, jittered, capped.

    The base doubles each attempt (base, 2*base, 4*base, ...) up to the cap; the jitter keeps
    the delay within [75%, 100%] of that, so retries of many jobs spread out but never come
    sooner than promised by much. A receiver's `Retry-After` is a floor, also capped.
    """
    exponential = min(settings.backoff_max_seconds, settings.backoff_base_seconds * (2 ** max(0, attempt - 1)))
    delay = exponential * (0.75 + 0.25 * rng.random())
    if retry_after is not None:
        delay = max(delay, min(float(retry_after), settings.backoff_max_seconds))
    return delay


def claim(session: Session, job_id: int, settings: DeliverySettings, now: datetime | None = None) -> NotificationJob | None:
    """Atomically take a job for one attempt, or None if it is not ours to send now.

    Not ours: delivered, failed or throttled; claimed by another worker whose lease holds;
    or a retry scheduled for later (an early duplicate message).
    """
    now = now or utcnow()
    result = session.execute(
        update(NotificationJob)
        .where(
            NotificationJob.job_id == job_id,
            or_(
                (NotificationJob.status.in_(WAITING_JOB_STATUSES))
                & (NotificationJob.next_attempt_at <= now + SCHEDULE_TOLERANCE),
                (NotificationJob.status == JobStatus.SENDING) & (NotificationJob.next_attempt_at < now),
            ),
        )
        .values(
            status=JobStatus.SENDING,
            attempts=NotificationJob.attempts + 1,
            next_attempt_at=now + claim_lease(settings),
            updated_at=now,
        )
        .returning(NotificationJob)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return result.scalars().first()


def attempt_delivery(db: Database, box: SecretBox, job_id: int, settings: DeliverySettings) -> AttemptOutcome | None:
    """Claim and send one job. None when there was nothing to send (see `claim`).

    Raises TransientError (retry), PermanentError (dead-letter) or AttemptExhausted (a
    transient failure on the last allowed attempt), each carrying `job_id`, `attempt`
    and `duration_ms` for the results hook.
    """
    with db.session() as session:
        job = claim(session, job_id, settings)
        if job is None:
            return None
        attempt = job.attempts
        budget_used = job.attempts - job.attempts_at_replay
        payload = {**job.payload, "job_id": job.job_id}
        # The claim commits when this block ends, before anything is sent.
        try:
            channel_type, config = _channel_and_config(session, box, job.channel_id)
            unusable = None
        except DeliveryError as exc:
            channel_type, config, unusable = None, None, exc

    started = time.perf_counter()
    try:
        if unusable is not None:
            raise unusable
        notification = Notification(payload=payload, message_id=str(job_id))
        result = get_sender(channel_type).send(config, notification, SendContext(settings))
    except TransientError as exc:
        _annotate(exc, job_id, attempt, budget_used, started)
        if budget_used >= settings.max_attempts:
            final = AttemptExhausted(f"{exc.message} (attempt {budget_used} of {settings.max_attempts})", status_code=exc.status_code)
            _annotate(final, job_id, attempt, budget_used, started)
            raise final from None
        raise
    except DeliveryError as exc:
        _annotate(exc, job_id, attempt, budget_used, started)
        raise
    except Exception as exc:  # a sender bug must still end in the log, never as a lost job
        error = PermanentError(f"internal error in the {channel_type} sender: {type(exc).__name__}")
        _annotate(error, job_id, attempt, budget_used, started)
        raise error from exc
    return AttemptOutcome(job_id, attempt, result.status_code, _elapsed(started), result.detail)


def _channel_and_config(session: Session, box: SecretBox, channel_id: int) -> tuple[str, Any]:
    """The channel's type and validated config; PermanentError if it cannot be sent to."""
    channel = session.get(NotificationChannel, channel_id)
    if channel is None:
        raise PermanentError("the channel no longer exists")
    if not channel.is_enabled:
        raise PermanentError("the channel is disabled")
    return channel.channel_type, channel_config(box, channel)


def _elapsed(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _annotate(exc: DeliveryError, job_id: int, attempt: int, budget_attempt: int, started: float) -> None:
    # What the results hook and the retry schedule need to know about this attempt.
    exc.job_id = job_id
    exc.attempt = attempt
    exc.budget_attempt = budget_attempt
    exc.duration_ms = _elapsed(started)


def _log(session: Session, job: NotificationJob, attempt: int, success: bool, status_code, error, duration_ms) -> None:
    session.add(
        DeliveryLog(
            tenant_id=job.tenant_id,
            job_id=job.job_id,
            attempt=attempt,
            success=success,
            status_code=status_code,
            error=error,
            duration_ms=duration_ms,
        )
    )


def record_success(db: Database, outcome: AttemptOutcome) -> None:
    """The attempt delivered: log it and mark the job DELIVERED."""
    now = utcnow()
    with db.session() as session:
        tenant_id = session.execute(
            update(NotificationJob)
            .where(NotificationJob.job_id == outcome.job_id)
            .values(status=JobStatus.DELIVERED, delivered_at=now, last_error=None, updated_at=now)
            .returning(NotificationJob.tenant_id)
            .execution_options(synchronize_session=False)
        ).scalar()
        if tenant_id is None:
            return
        session.add(
            DeliveryLog(
                tenant_id=tenant_id,
                job_id=outcome.job_id,
                attempt=outcome.attempt,
                success=True,
                status_code=outcome.status_code,
                error=None,
                duration_ms=outcome.duration_ms,
                created_at=now,
            )
        )


def record_retry(db: Database, exc: DeliveryError, next_attempt_at: datetime) -> None:
    """The attempt failed and another is scheduled: log it and mark the job RETRYING."""
    _record_failure(db, exc, JobStatus.RETRYING, next_attempt_at)


def record_failure(db: Database, exc: DeliveryError) -> None:
    """The attempt failed for good: log it and dead-letter the job (FAILED)."""
    _record_failure(db, exc, JobStatus.FAILED, None)


def _record_failure(db: Database, exc: DeliveryError, status: str, next_attempt_at: datetime | None) -> None:
    job_id = getattr(exc, "job_id", None)
    if job_id is None:
        return
    with db.session() as session:
        job = session.get(NotificationJob, job_id, with_for_update=True)
        if job is None:
            return
        now = utcnow()
        _log(session, job, exc.attempt, False, exc.status_code, exc.message, exc.duration_ms)
        job.status = status
        job.last_error = exc.message
        job.updated_at = now
        if next_attempt_at is not None:
            job.next_attempt_at = next_attempt_at


def replay(session: Session, job: NotificationJob) -> bool:
    """Put a FAILED job back to PENDING with a fresh allowance of attempts; False otherwise."""
    if job.status != JobStatus.FAILED:
        return False
    now = utcnow()
    job.status = JobStatus.PENDING
    job.attempts_at_replay = job.attempts
    job.next_attempt_at = now
    job.updated_at = now
    return True


def find_lost(session: Session, now: datetime, grace: timedelta, limit: int = 500) -> list[tuple[int, str]]:
    """Jobs whose message must have been lost; marks them seen so each sweep sends one message.

    Lost means: PENDING or RETRYING and overdue by more than `grace` (the broker was down at
    dispatch, or lost its queue), or SENDING past its claim lease (the worker died).
    """
    rows = session.execute(
        select(NotificationJob.job_id, NotificationJob.queue)
        .where(
            or_(
                NotificationJob.status.in_(WAITING_JOB_STATUSES) & (NotificationJob.next_attempt_at < now - grace),
                (NotificationJob.status == JobStatus.SENDING) & (NotificationJob.next_attempt_at < now),
            )
        )
        .order_by(NotificationJob.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not rows:
        return []
    ids = [row.job_id for row in rows]
    for job in session.scalars(select(NotificationJob).where(NotificationJob.job_id.in_(ids))):
        if job.status == JobStatus.SENDING:
            # Its worker died mid-attempt: the outcome is unknown, so the attempt is logged
            # as failed and the job goes round again (at least once, same webhook-id).
            _log(session, job, job.attempts, False, None, "worker lost during the attempt; outcome unknown", None)
            job.status = JobStatus.RETRYING
            job.last_error = "worker lost during the attempt"
        # Stamped now: the next sweep leaves the job alone for another `grace`.
        job.next_attempt_at = now
        job.updated_at = now
    return [(row.job_id, row.queue) for row in rows]
