"""The notification jobs table as the delivery queue: claims, fenced outcomes, and feeding the broker.

The database is the source of truth; a broker message only says "try this job now". A job
waiting for an attempt (PENDING or RETRYING) either has a message out (`enqueued_at` set) or
waits without one, and is then *fed* to the broker when its turn comes:

* **Per tenant**, at most `tenant_queue_depth` jobs of one tenant have a message waiting in one
  queue at a time; the rest wait in the database in job order and are fed as that tenant's
  messages are consumed. One tenant's backlog therefore sits in the database, not in front of
  another tenant's messages in the broker.
* **Per alert and channel**, a job is not attempted while an earlier event's job of the same
  alert on the same channel is unsettled; the earlier job's outcome feeds it.
* **Per channel**, a job held because its channel was busy or its circuit open (`hold`) is fed
  by the channel: when a slot frees, or its circuit closes.

Each claim is one numbered attempt (`attempts`, the fencing token): only the attempt that
still holds the claim changes the job; a late outcome is logged against its own attempt.
Every function here runs in the caller's transaction; the messages of the jobs it returns are
sent after the commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from app.config import DeliverySettings
from app.db import db_after, db_now, insert_for
from app.delivery.policy import SCHEDULE_TOLERANCE, claim_lease
from app.delivery.records import AttemptRecord
from app.models import (
    HOLD_CHANNEL_BUSY,
    HOLD_CIRCUIT_OPEN,
    AlertEvent,
    DeliveryLog,
    NotificationChannel,
    NotificationJob,
)
from app.status import UNSETTLED_JOB_STATUSES, WAITING_JOB_STATUSES, JobStatus

Job = NotificationJob
# A (job_id, queue) whose broker message is to be sent.
Target = tuple[int, str]

LATE_OUTCOME = " (reported after its lease had expired; the job had moved on)"


@dataclass(frozen=True)
class ClaimedJob:
    """A job claimed for one attempt, with what sending it needs."""

    job_id: int
    tenant_id: str
    alert_id: int
    channel_id: int
    queue: str
    attempt: int
    budget_attempt: int
    payload: dict[str, Any]
    channel: NotificationChannel | None

    @property
    def token(self) -> str:
        """Names this attempt in the channel's bulkhead."""
        return f"{self.job_id}:{self.attempt}"


def _not_blocked(job=Job):
    """No earlier event's job of the same alert on the same channel is still unsettled."""
    earlier = aliased(Job)
    return ~exists().where(
        earlier.tenant_id == job.tenant_id,
        earlier.alert_id == job.alert_id,
        earlier.channel_id == job.channel_id,
        earlier.job_id < job.job_id,
        earlier.status.in_(UNSETTLED_JOB_STATUSES),
    )


def _fresh(session: Session, settings: DeliverySettings, job=Job):
    """Not older than DELIVERY_MAX_AGE_SECONDS (counted from creation, or from the last replay)."""
    return func.coalesce(job.replayed_at, job.created_at) > db_after(session, -settings.max_age_seconds)


def _due(session: Session, job=Job):
    return job.next_attempt_at <= db_now(session)


def claim(session: Session, job_id: int, settings: DeliverySettings) -> ClaimedJob | None:
    """Take a job for one attempt, or None if it is not to be attempted now.

    Not now: settled, throttled or suppressed; claimed by an attempt whose lease holds; a
    retry scheduled for later (an early or duplicate message); waiting behind an earlier
    event of its alert on its channel; or expired (the sweeper dead-letters it).
    """
    now = db_now(session)
    row = session.execute(
        update(Job)
        .where(
            Job.job_id == job_id,
            Job.status.in_(WAITING_JOB_STATUSES),
            Job.next_attempt_at <= db_after(session, SCHEDULE_TOLERANCE.total_seconds()),
            _fresh(session, settings),
            _not_blocked(),
        )
        .values(
            status=JobStatus.SENDING,
            attempts=Job.attempts + 1,
            next_attempt_at=db_after(session, claim_lease(settings).total_seconds()),
            enqueued_at=None,
            hold=None,
            updated_at=now,
        )
        .returning(
            Job.tenant_id, Job.alert_id, Job.channel_id, Job.event_id, Job.queue, Job.attempts, Job.attempts_at_replay
        )
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        return None
    channel = session.get(NotificationChannel, row.channel_id)
    payload = session.scalar(select(AlertEvent.payload).where(AlertEvent.event_id == row.event_id))
    return ClaimedJob(
        job_id=job_id,
        tenant_id=row.tenant_id,
        alert_id=row.alert_id,
        channel_id=row.channel_id,
        queue=row.queue,
        attempt=row.attempts,
        budget_attempt=row.attempts - row.attempts_at_replay,
        payload={**payload, "job_id": job_id},
        channel=channel,
    )


def consumed_without_claim(session: Session, job_id: int) -> Target | None:
    """A message found its job not claimable: the job, if due, now waits without a message.

    A job that is due but could not be claimed waits behind an earlier event of its alert (or
    has expired); it is fed again when that one settles. A job not yet due keeps its mark: its
    own ETA message is still to come. Returns the job's (tenant, queue), so the tenant's
    share of the queue can be topped up.
    """
    row = session.execute(
        update(Job)
        .where(
            Job.job_id == job_id,
            Job.status.in_(WAITING_JOB_STATUSES),
            Job.enqueued_at.is_not(None),
            Job.next_attempt_at <= db_after(session, SCHEDULE_TOLERANCE.total_seconds()),
        )
        .values(enqueued_at=None)
        .returning(Job.tenant_id, Job.queue)
        .execution_options(synchronize_session=False)
    ).first()
    return (row.tenant_id, row.queue) if row else None


def hold(session: Session, claimed: ClaimedJob, reason: str, wait_seconds: float = 0.0) -> bool:
    """Give a claim back unspent: its channel is busy or its circuit open. False if stale.

    The attempt is not counted; the job waits, without a message, until its channel feeds it.
    """
    restored = JobStatus.PENDING if claimed.budget_attempt == 1 else JobStatus.RETRYING
    result = session.execute(
        update(Job)
        .where(Job.job_id == claimed.job_id, Job.status == JobStatus.SENDING, Job.attempts == claimed.attempt)
        .values(
            status=restored,
            attempts=Job.attempts - 1,
            hold=reason,
            enqueued_at=None,
            next_attempt_at=db_after(session, wait_seconds),
            updated_at=db_now(session),
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


@dataclass(frozen=True)
class Recorded:
    """What recording an outcome did: the job's new status (None when stale) and jobs to feed."""

    status: JobStatus | None
    to_send: list[Target]

    @property
    def stale(self) -> bool:
        return self.status is None


def record_outcome(session: Session, record: AttemptRecord) -> Recorded:
    """Write one attempt's outcome: its log row, and the job's state if the claim is still its own.

    The job changes only while it is SENDING under this very attempt (one conditional
    UPDATE): the outcome of an attempt whose lease expired is logged against its attempt and
    never moves the job (a DELIVERED job never goes back). A settled job feeds the next event
    of its alert on its channel, and the freed slot feeds the channel's held jobs.
    """
    now = db_now(session)
    if record.success:
        status, values = JobStatus.DELIVERED, {"delivered_at": now, "last_error": None, "enqueued_at": None}
    elif record.will_retry:
        values = {
            "last_error": record.detail,
            "next_attempt_at": db_after(session, record.retry_in),
            "enqueued_at": now if record.eta_message else None,
        }
        status = JobStatus.RETRYING
    else:
        status, values = JobStatus.FAILED, {"last_error": record.detail, "enqueued_at": None}
    row = session.execute(
        update(Job)
        .where(Job.job_id == record.job_id, Job.status == JobStatus.SENDING, Job.attempts == record.attempt)
        .values(status=status, hold=None, updated_at=now, **values)
        .returning(Job.tenant_id, Job.alert_id, Job.channel_id)
        .execution_options(synchronize_session=False)
    ).first()
    error = None if record.success else record.detail
    if row is None:
        _log_attempt(session, record, (error or "delivered") + LATE_OUTCOME)
        return Recorded(None, [])
    _log_attempt(session, record, error)
    to_send: list[Target] = []
    if status in (JobStatus.DELIVERED, JobStatus.FAILED):
        to_send += release_successor(session, record.tenant_id, row.alert_id, row.channel_id, record.job_id)
    return Recorded(status, to_send)


def _log_attempt(session: Session, record: AttemptRecord, error: str | None) -> None:
    # One row per attempt. A row the sweeper wrote for a lease that expired (outcome unknown,
    # no duration) is corrected by the attempt's own late outcome; any other is kept.
    insert = insert_for(session)(DeliveryLog).values(
        tenant_id=record.tenant_id,
        job_id=record.job_id,
        attempt=record.attempt,
        success=record.success,
        status_code=record.status_code,
        error=error,
        duration_ms=record.duration_ms,
        created_at=db_now(session),
    )
    session.execute(
        insert.on_conflict_do_update(
            index_elements=["job_id", "attempt"],
            set_={
                "success": insert.excluded.success,
                "status_code": insert.excluded.status_code,
                "error": insert.excluded.error,
                "duration_ms": insert.excluded.duration_ms,
            },
            where=DeliveryLog.duration_ms.is_(None),
        )
    )


def log_lost_attempt(session: Session, job: Job, error: str) -> None:
    """The log row of an attempt whose outcome is unknown (its worker died): no duration."""
    session.execute(
        insert_for(session)(DeliveryLog)
        .values(
            tenant_id=job.tenant_id,
            job_id=job.job_id,
            attempt=job.attempts,
            success=False,
            status_code=None,
            error=error,
            duration_ms=None,
            created_at=db_now(session),
        )
        .on_conflict_do_nothing(index_elements=["job_id", "attempt"])
    )


def _feed(session: Session, candidates, *, clear_hold: bool = False) -> list[Target]:
    """Mark the chosen jobs as having a message out; their messages go after the commit."""
    values: dict[str, Any] = {"enqueued_at": db_now(session)}
    if clear_hold:
        values["hold"] = None
    rows = session.execute(
        update(Job)
        .where(Job.job_id.in_(candidates.scalar_subquery()), Job.enqueued_at.is_(None))
        .values(**values)
        .returning(Job.job_id, Job.queue)
        .execution_options(synchronize_session=False)
    ).all()
    return sorted((row.job_id, row.queue) for row in rows)


def _waiting_unqueued(session: Session, settings: DeliverySettings):
    return and_(
        Job.status.in_(WAITING_JOB_STATUSES),
        Job.enqueued_at.is_(None),
        _due(session),
        _fresh(session, settings),
        _not_blocked(),
    )


def queued_count(session: Session, tenant_id: str, queue: str):
    """How many of a tenant's jobs have a message waiting in `queue` (a scalar subquery)."""
    return (
        select(func.count())
        .select_from(Job)
        .where(
            Job.tenant_id == tenant_id,
            Job.queue == queue,
            Job.enqueued_at.is_not(None),
            Job.status.in_(WAITING_JOB_STATUSES),
            _due(session),
        )
        .scalar_subquery()
    )


def feed_tenant(session: Session, tenant_id: str, queue: str, settings: DeliverySettings) -> list[Target]:
    """Top up the tenant's share of `queue` with its oldest waiting jobs, up to the depth."""
    room = settings.tenant_queue_depth - queued_count(session, tenant_id, queue)
    candidates = (
        select(Job.job_id)
        .where(Job.tenant_id == tenant_id, Job.queue == queue, Job.hold.is_(None), _waiting_unqueued(session, settings))
        .order_by(Job.job_id)
        .limit(case((room > 0, room), else_=0))
        .with_for_update(skip_locked=True)
    )
    return _feed(session, candidates)


def feed_channel(session: Session, channel_id: int, slots: int, settings: DeliverySettings) -> list[Target]:
    """Feed up to `slots` of the jobs held for a busy channel, oldest first."""
    if slots <= 0:
        return []
    candidates = (
        select(Job.job_id)
        .where(Job.channel_id == channel_id, Job.hold == HOLD_CHANNEL_BUSY, _waiting_unqueued(session, settings))
        .order_by(Job.job_id)
        .limit(slots)
        .with_for_update(skip_locked=True)
    )
    return _feed(session, candidates, clear_hold=True)


def has_held(session: Session, channel_id: int) -> bool:
    """Whether jobs wait for this channel (busy, or its circuit open)."""
    return bool(session.scalar(select(exists().where(Job.channel_id == channel_id, Job.hold.is_not(None)))))


def release_circuit_holds(session: Session, channel_id: int) -> int:
    """The channel's circuit closed: its jobs held for the circuit now wait for a free slot."""
    return session.execute(
        update(Job)
        .where(Job.channel_id == channel_id, Job.hold == HOLD_CIRCUIT_OPEN)
        .values(hold=HOLD_CHANNEL_BUSY, next_attempt_at=db_now(session))
        .execution_options(synchronize_session=False)
    ).rowcount


def feed_probe(session: Session, channel_id: int, settings: DeliverySettings) -> list[Target]:
    """Feed the oldest job held for the channel's circuit: the probe once its open period passed."""
    candidates = (
        select(Job.job_id)
        .where(
            Job.channel_id == channel_id,
            Job.hold == HOLD_CIRCUIT_OPEN,
            Job.status.in_(WAITING_JOB_STATUSES),
            Job.enqueued_at.is_(None),
            _fresh(session, settings),
            _not_blocked(),
        )
        .order_by(Job.job_id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return _feed(session, candidates, clear_hold=True)


def release_successor(session: Session, tenant_id: str, alert_id: int, channel_id: int, job_id: int) -> list[Target]:
    """A job settled: the next event of its alert on its channel may go now, if it waits."""
    candidates = (
        select(Job.job_id)
        .where(
            Job.tenant_id == tenant_id,
            Job.alert_id == alert_id,
            Job.channel_id == channel_id,
            Job.job_id > job_id,
            Job.status.in_(WAITING_JOB_STATUSES),
            Job.enqueued_at.is_(None),
            Job.hold.is_(None),
            _due(session),
        )
        .order_by(Job.job_id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return _feed(session, candidates)


def unmark(session: Session, job_ids: list[int]) -> None:
    """Their messages could not be sent (the broker is down): they wait to be fed again."""
    if job_ids:
        session.execute(
            update(Job)
            .where(Job.job_id.in_(job_ids), Job.status.in_(WAITING_JOB_STATUSES))
            .values(enqueued_at=None)
            .execution_options(synchronize_session=False)
        )


def _later_event_delivered(job):
    """A later event of the job's alert was already delivered on its channel (an EXISTS)."""
    later = aliased(Job)
    return exists().where(
        later.tenant_id == job.tenant_id,
        later.alert_id == job.alert_id,
        later.channel_id == job.channel_id,
        later.job_id > job.job_id,
        later.status == JobStatus.DELIVERED,
    )


def superseded(session: Session, job: Job) -> bool:
    """Replaying `job` would deliver an event its receiver has already seen followed."""
    return bool(session.scalar(select(_later_event_delivered(job))))


def not_superseded(job=Job):
    """The SQL form of `not superseded(job)`, for bulk replay."""
    return ~_later_event_delivered(job)


def replay(session: Session, job: Job) -> str | None:
    """Put a FAILED job back to PENDING with a fresh allowance of attempts and of age.

    Returns None when replayed, else why not (it is not FAILED, or it is superseded).
    """
    if job.status != JobStatus.FAILED:
        return f"only a FAILED delivery can be replayed; this one is {job.status}"
    if superseded(session, job):
        return "superseded: a later event of this alert was already delivered on this channel"
    now = db_now(session)
    session.execute(
        update(Job)
        .where(Job.job_id == job.job_id, Job.status == JobStatus.FAILED)
        .values(
            status=JobStatus.PENDING,
            attempts_at_replay=Job.attempts,
            next_attempt_at=now,
            replayed_at=now,
            enqueued_at=None,
            hold=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(job)
    return None


