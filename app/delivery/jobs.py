"""The notification jobs table as the delivery queue: claims, fenced outcomes, and feeding the broker.

The database is the source of truth; a broker message only says "try this job now". A job
waiting for an attempt (PENDING or RETRYING) either has a message out (`enqueued_at` set) or
waits without one, and is then *fed* to the broker when its turn comes:

* **Per tenant**, at most `tenant_queue_depth` jobs of one tenant have a message waiting in one
  queue at a time; the rest wait in the database in job order and are fed as that tenant's
  messages are consumed, half a share at a time (`Share`). One tenant's backlog therefore
  sits in the database, not in front of another tenant's messages in the broker.
* **Per alert and channel**, a job is not attempted while an earlier event's job of the same
  alert on the same channel is unsettled; the earlier job's outcome feeds it.
* **Per channel**, a job held because its channel was busy or its circuit open (`hold`) is fed
  by the channel: when a slot frees, or its circuit closes.

Each claim is one numbered attempt (`attempts`, the fencing token): only the attempt that
still holds the claim changes the job; a late outcome is logged against its own attempt.
Every function here runs in the caller's transaction (a claim, and an outcome written on the
driver, are each a transaction of their own: one round trip); the messages of the jobs it
returns are sent after the commit.

The module is longer than most (about 700 lines) because the statements of one queue belong
together: each claim, feed and release is written against the same predicates (`_not_blocked`,
`_fresh`, `_feeding`), and splitting them would put those far from their users.

The statements of the delivery path are built once, at import, from the tables (SQLAlchemy
Core with bound parameters): building them per call cost more CPU than running them. Times
compare with the database's clock (`DbNow`, `DbAfter`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from app.config import DeliverySettings
from app.db import DbAfter, DbNow, NoIndexKey, Work, defer, insert_for, is_postgres, prepared, run_alone
from app.db import run as _run
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
JOBS = NotificationJob.__table__
EVENTS = AlertEvent.__table__
CHANNELS = NotificationChannel.__table__
LOG = DeliveryLog.__table__
# A (job_id, queue) whose broker message is to be sent.
Target = tuple[int, str]

LATE_OUTCOME = " (reported after its lease had expired; the job had moved on)"
WAITING = [str(status) for status in WAITING_JOB_STATUSES]
UNSETTLED = [str(status) for status in UNSETTLED_JOB_STATUSES]


def _one_of(column, statuses: list[str]):
    """`column IN (...)` with the statuses written into the SQL text, not bound.

    A partial index whose predicate names them (`ix_notification_jobs_queued`, `_unqueued`)
    serves a query only if the query's own WHERE says the same: SQLite cannot look through a
    bound parameter, and without those indexes a share count read every waiting job of every
    tenant, in the writer's turn, at a cost that grows with the backlog. PostgreSQL's
    prepared plans write the constants in as well (app.db).

    Written in when the statement is compiled, once: a parameter rendered as literals at
    execution (`literal_execute`) was rendered again on every run of the statement, a tenth
    of a claim's CPU on SQLite (py-spy under make run). The statuses are the enum's names.
    """
    for status in statuses:
        if not re.fullmatch(r"[A-Z_]+", status):
            raise ValueError(f"not a job status: {status!r}")
    return column.in_([literal_column(f"'{status}'") for status in statuses])


@dataclass(frozen=True)
class Share:
    """A tenant's share of one queue: its messages waiting, and whether more jobs wait unsent."""

    queued: int
    backlog: bool

    def needs_feeding(self, settings: DeliverySettings) -> bool:
        """Whether to top the share up now: jobs wait unsent and it is down to half its depth.

        At half, not after every message: a top-up is one statement and one publish whatever
        it sends, so a backlog is fed half a share at a time instead of a job per delivery.
        """
        return bool(self.backlog) and self.queued <= settings.tenant_queue_depth // 2


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
    # The channel's row (type, config, secrets, enabled, updated_at), or None if it is gone.
    channel: Any
    # When the job's event happened (its acknowledge link expires 7 days later).
    event_at: Any = None
    # The tenant's share of the job's queue as the claim saw it (the claimed job left out).
    share: Share | None = None

    @property
    def token(self) -> str:
        """Names this attempt in the channel's bulkhead."""
        return f"{self.job_id}:{self.attempt}"


# Conditions, over the jobs table or an alias of it -------------------------------------


def _not_blocked(job=JOBS):
    """No earlier event's job of the same alert on the same channel is still unsettled."""
    earlier = JOBS.alias("earlier")
    return ~exists().where(
        earlier.c.tenant_id == job.c.tenant_id,
        earlier.c.alert_id == job.c.alert_id,
        earlier.c.channel_id == job.c.channel_id,
        earlier.c.job_id < job.c.job_id,
        _one_of(earlier.c.status, UNSETTLED),
    )


def _fresh(job=JOBS):
    """Not older than the bound `p_max_age` seconds (from creation, or from the last replay)."""
    return func.coalesce(job.c.replayed_at, job.c.created_at) > DbAfter(-cast(bindparam("p_max_age"), Float))


def _later_event_delivered(job):
    """A later event of the job's alert was already delivered on its channel (an EXISTS)."""
    later = JOBS.alias("later")
    return exists().where(
        later.c.tenant_id == job.tenant_id,
        later.c.alert_id == job.alert_id,
        later.c.channel_id == job.channel_id,
        later.c.job_id > job.job_id,
        later.c.status == JobStatus.DELIVERED,
    )


def queued_messages(tenant_id, queue, besides=None):
    """How many of a tenant's jobs have a message waiting in `queue` (but `besides`), as a scalar."""
    queued = JOBS.alias("queued")
    conditions = [
        queued.c.tenant_id == tenant_id,
        queued.c.queue == queue,
        queued.c.enqueued_at.is_not(None),
        _one_of(queued.c.status, WAITING),
        NoIndexKey(queued.c.next_attempt_at) <= DbNow(),
    ]
    if besides is not None:
        conditions.append(queued.c.job_id != besides)
    return select(func.count()).select_from(queued).where(*conditions).scalar_subquery()


def _backlog(tenant_id, queue):
    """Whether a job of the tenant for `queue` is due and waits without a message (an EXISTS)."""
    waiting = JOBS.alias("backlog")
    return exists().where(
        waiting.c.tenant_id == tenant_id,
        waiting.c.queue == queue,
        _one_of(waiting.c.status, WAITING),
        waiting.c.enqueued_at.is_(None),
        waiting.c.hold.is_(None),
        NoIndexKey(waiting.c.next_attempt_at) <= DbNow(),
    )


_WAITING_UNQUEUED = and_(
    _one_of(JOBS.c.status, WAITING),
    JOBS.c.enqueued_at.is_(None),
    JOBS.c.next_attempt_at <= DbNow(),
    _fresh(),
    _not_blocked(),
)


def _feeding(candidates, *, clear_hold: bool = False, single: bool = False):
    """Mark the chosen jobs as having a message out; their messages go after the commit.

    The candidates are chosen once, then their rows are updated by primary key: as a CTE (the
    rows are locked and materialised before the update reads them) or, for at most one job
    (`single`, a LIMIT 1), as an equality. Written as `job_id IN (candidates)`, PostgreSQL
    may plan a semi-join that scans the table and runs the candidates' LIMIT again for each
    of its rows; a prepared plan made while the table was small then did so on every run.
    """
    values: dict[str, Any] = {"enqueued_at": DbNow(), "updated_at": DbNow()}
    if clear_hold:
        values["hold"] = None
    if single:
        chosen = JOBS.c.job_id == candidates.scalar_subquery()
    else:
        candidates = candidates.cte("chosen").prefix_with("MATERIALIZED", dialect="postgresql")
        chosen = JOBS.c.job_id == candidates.c.job_id
    return (
        update(JOBS)
        .where(chosen, JOBS.c.enqueued_at.is_(None))
        .values(**values)
        .returning(JOBS.c.job_id, JOBS.c.queue)
    )


# The statements ---------------------------------------------------------------------

_CLAIM = (
    update(JOBS)
    .where(
        JOBS.c.job_id == bindparam("p_job_id"),
        _one_of(JOBS.c.status, WAITING),
        JOBS.c.next_attempt_at <= DbAfter(bindparam("p_tolerance")),
        _fresh(),
        _not_blocked(),
    )
    .values(
        status=JobStatus.SENDING,
        attempts=JOBS.c.attempts + 1,
        next_attempt_at=DbAfter(bindparam("p_lease")),
        enqueued_at=None,
        hold=None,
        updated_at=DbNow(),
    )
    .returning(
        JOBS.c.tenant_id, JOBS.c.alert_id, JOBS.c.channel_id, JOBS.c.event_id, JOBS.c.queue, JOBS.c.attempts,
        JOBS.c.attempts_at_replay,
    )
)
_CHANNEL_COLUMNS = (
    CHANNELS.c.channel_id, CHANNELS.c.tenant_id, CHANNELS.c.channel_type, CHANNELS.c.config,
    CHANNELS.c.encrypted_secrets, CHANNELS.c.is_enabled, CHANNELS.c.updated_at, CHANNELS.c.deleted_at,
)
_SENDING_WITH = select(
    *_CHANNEL_COLUMNS,
    EVENTS.c.payload,
    EVENTS.c.created_at.label("event_at"),
    queued_messages(bindparam("p_tenant_id"), bindparam("p_queue"), besides=bindparam("p_job_id")).label("queued"),
    _backlog(bindparam("p_tenant_id"), bindparam("p_queue")).label("backlog"),
).select_from(EVENTS).outerjoin(
    CHANNELS, CHANNELS.c.channel_id == bindparam("p_channel_id")
).where(EVENTS.c.event_id == bindparam("p_event_id"))

# PostgreSQL claims and reads what the attempt needs in one round trip. The claim's snapshot
# still shows the claimed job's message waiting: the count leaves it out by its id.
_claimed = _CLAIM.cte("claimed")
_CLAIM_WITH_CHANNEL = prepared(
    select(
        _claimed,
        *_CHANNEL_COLUMNS[1:],
        EVENTS.c.payload,
        EVENTS.c.created_at.label("event_at"),
        queued_messages(_claimed.c.tenant_id, _claimed.c.queue, besides=bindparam("p_job_id")).label("queued"),
        _backlog(_claimed.c.tenant_id, _claimed.c.queue).label("backlog"),
    )
    .select_from(_claimed)
    .join(EVENTS, EVENTS.c.event_id == _claimed.c.event_id)
    .outerjoin(CHANNELS, CHANNELS.c.channel_id == _claimed.c.channel_id)
)

_CONSUMED_WITHOUT_CLAIM = (
    update(JOBS)
    .where(
        JOBS.c.job_id == bindparam("p_job_id"),
        _one_of(JOBS.c.status, WAITING),
        JOBS.c.enqueued_at.is_not(None),
        JOBS.c.next_attempt_at <= DbAfter(bindparam("p_tolerance")),
    )
    .values(enqueued_at=None, updated_at=DbNow())
    .returning(JOBS.c.tenant_id, JOBS.c.queue)
)

_HOLD = (
    update(JOBS)
    .where(JOBS.c.job_id == bindparam("p_job_id"), JOBS.c.status == JobStatus.SENDING, JOBS.c.attempts == bindparam("p_attempt"))
    .values(
        status=bindparam("p_restored"),
        attempts=JOBS.c.attempts - 1,
        hold=bindparam("p_reason"),
        enqueued_at=None,
        next_attempt_at=DbAfter(bindparam("p_wait")),
        updated_at=DbNow(),
    )
)

_held = JOBS.alias("held")
_waiting_later = JOBS.alias("waiting_later")


def _outcome_facts(tenant_id, alert_id, channel_id, job_id, queue) -> tuple:
    """What a job's outcome decides next, as columns: successor, held channel, the tenant's share."""
    return (
        # Whether a later event of the alert waits on this channel: only then is one released.
        exists()
        .where(
            _waiting_later.c.tenant_id == tenant_id,
            _waiting_later.c.alert_id == alert_id,
            _waiting_later.c.channel_id == channel_id,
            _waiting_later.c.job_id > job_id,
            _one_of(_waiting_later.c.status, WAITING),
        )
        .label("later_waiting"),
        # Whether jobs are held for the channel: only then does its freed slot feed one.
        exists().where(_held.c.channel_id == channel_id, _held.c.hold.is_not(None)).label("channel_held"),
        # The tenant's messages waiting in the queue: the claims of the attempts in flight
        # have committed by now, so this count is the one that keeps the share fed.
        queued_messages(tenant_id, queue).label("queued"),
        _backlog(tenant_id, queue).label("backlog"),
    )


_SETTLE = (
    update(JOBS)
    .where(JOBS.c.job_id == bindparam("p_job_id"), JOBS.c.status == JobStatus.SENDING, JOBS.c.attempts == bindparam("p_attempt"))
    .values(
        status=bindparam("p_status"),
        hold=None,
        updated_at=DbNow(),
        last_error=bindparam("p_last_error"),
        # Delivered: now; otherwise kept.
        delivered_at=case((bindparam("p_delivered", type_=Boolean), DbNow()), else_=JOBS.c.delivered_at),
        # A retry: its due time; otherwise kept.
        next_attempt_at=case((bindparam("p_retrying", type_=Boolean), DbAfter(bindparam("p_retry_in", type_=Float))), else_=JOBS.c.next_attempt_at),
        # A retry as an ETA message has its message out; any other outcome has none.
        enqueued_at=case((bindparam("p_eta", type_=Boolean), DbNow()), else_=None),
    )
)
_RECORD = _SETTLE.returning(
    JOBS.c.alert_id,
    JOBS.c.channel_id,
    *_outcome_facts(JOBS.c.tenant_id, JOBS.c.alert_id, JOBS.c.channel_id, JOBS.c.job_id, JOBS.c.queue),
)
# SQLite does not look a RETURNING clause's subqueries up by the updated row's values: it
# scanned the jobs table for each of them. There the job is updated alone, and the facts
# are read with the job's values bound.
_RECORD_ALONE = _SETTLE.returning(JOBS.c.alert_id, JOBS.c.channel_id, JOBS.c.tenant_id, JOBS.c.queue)
_OUTCOME_FACTS = select(
    *_outcome_facts(bindparam("p_tenant_id"), bindparam("p_alert_id"), bindparam("p_channel_id"), bindparam("p_job_id"), bindparam("p_queue"))
)

# Prepared: with the jobs table's many partial indexes, planning this lookup by primary key
# took PostgreSQL three times as long as running it.
_LOCK_JOB = prepared(select(JOBS.c.job_id).where(JOBS.c.job_id == bindparam("p_job_id")).with_for_update(key_share=True))

_QUEUED = queued_messages(bindparam("p_tenant_id"), bindparam("p_queue"))
_QUEUED_COUNT = select(_QUEUED)
_room = bindparam("p_depth") - _QUEUED
# Prepared: it runs with every alert while a tenant's queue is being drained, and planning
# it cost PostgreSQL 1.7 ms against 0.3 ms of running it (EXPLAIN ANALYZE).
_FEED_TENANT = prepared(
    _feeding(
        select(JOBS.c.job_id)
        .where(JOBS.c.tenant_id == bindparam("p_tenant_id"), JOBS.c.queue == bindparam("p_queue"), JOBS.c.hold.is_(None), _WAITING_UNQUEUED)
        .order_by(JOBS.c.job_id)
        .limit(case((_room > 0, _room), else_=0))
        .with_for_update(skip_locked=True)
    )
)
_FEED_CHANNEL = _feeding(
    select(JOBS.c.job_id)
    .where(JOBS.c.channel_id == bindparam("p_channel_id"), JOBS.c.hold == HOLD_CHANNEL_BUSY, _WAITING_UNQUEUED)
    .order_by(JOBS.c.job_id)
    .limit(bindparam("p_slots"))
    .with_for_update(skip_locked=True),
    clear_hold=True,
)
_FEED_PROBE = _feeding(
    select(JOBS.c.job_id)
    .where(
        JOBS.c.channel_id == bindparam("p_channel_id"),
        JOBS.c.hold == HOLD_CIRCUIT_OPEN,
        _one_of(JOBS.c.status, WAITING),
        JOBS.c.enqueued_at.is_(None),
        _fresh(),
        _not_blocked(),
    )
    .order_by(JOBS.c.job_id)
    .limit(1)
    .with_for_update(skip_locked=True),
    clear_hold=True,
    single=True,
)


def _successor(alert_id, *conditions):
    """Feed the next event's job of the alert on the channel (bound `p_channel_id`), if it waits."""
    return _feeding(
        select(JOBS.c.job_id)
        .where(
            *conditions,
            JOBS.c.tenant_id == bindparam("p_tenant_id"),
            JOBS.c.alert_id == alert_id,
            JOBS.c.channel_id == bindparam("p_channel_id"),
            JOBS.c.job_id > bindparam("p_job_id"),
            _one_of(JOBS.c.status, WAITING),
            JOBS.c.enqueued_at.is_(None),
            JOBS.c.hold.is_(None),
            JOBS.c.next_attempt_at <= DbNow(),
        )
        .order_by(JOBS.c.job_id)
        .limit(1)
        .with_for_update(skip_locked=True),
        single=True,
    )


_RELEASE_SUCCESSOR = _successor(bindparam("p_alert_id"))
_RELEASE_CIRCUIT_HOLDS = (
    update(JOBS)
    .where(JOBS.c.channel_id == bindparam("p_channel_id"), JOBS.c.hold == HOLD_CIRCUIT_OPEN)
    .values(hold=HOLD_CHANNEL_BUSY, next_attempt_at=DbNow(), updated_at=DbNow())
)
_HAS_HELD = select(exists().where(JOBS.c.channel_id == bindparam("p_channel_id"), JOBS.c.hold.is_not(None)))
_UNMARK = (
    update(JOBS)
    .where(JOBS.c.job_id.in_(bindparam("p_job_ids", expanding=True)), _one_of(JOBS.c.status, WAITING))
    .values(enqueued_at=None, updated_at=DbNow())
)


def _targets(result) -> list[Target]:
    return sorted((row.job_id, row.queue) for row in result)


# The operations ---------------------------------------------------------------------


def claim(session: Session, job_id: int, settings: DeliverySettings) -> ClaimedJob | None:
    """Take a job for one attempt, or None if it is not to be attempted now.

    Not now: settled, throttled or suppressed; claimed by an attempt whose lease holds; a
    retry scheduled for later (an early or duplicate message); waiting behind an earlier
    event of its alert on its channel; or expired (the sweeper dead-letters it).

    On SQLite the claim commits before the attempt's reads (the writer's turn is held for one
    statement), so it must be its caller's whole unit of work, as it is in `Deliveries.attempt`.
    """
    params = {
        "job_id": job_id,
        "tolerance": SCHEDULE_TOLERANCE.total_seconds(),
        "lease": claim_lease(settings).total_seconds(),
        "max_age": settings.max_age_seconds,
    }
    if is_postgres(session):
        # The claim is a unit of work of its own: one round trip.
        row = run_alone(session, _CLAIM_WITH_CHANNEL, **params).first()
        if row is None:
            return None
        channel = row if row.channel_type is not None else None
        payload, event_at, share = row.payload, row.event_at, Share(row.queued, row.backlog)
    else:
        row = _run(session, _CLAIM, **params).first()
        if row is None:
            return None
        # SQLite has one writer at a time (app.sqlite_writer): the claim commits before the
        # attempt's reads, so it holds the writer's turn for its one statement. The claim
        # fences the attempt either way; the channel and the share are read a moment later.
        session.commit()
        found = _run(
            session, _SENDING_WITH, channel_id=row.channel_id, event_id=row.event_id, tenant_id=row.tenant_id, queue=row.queue, job_id=job_id
        ).first()
        channel = found if found.channel_type is not None else None
        payload, event_at, share = found.payload, found.event_at, Share(found.queued, found.backlog)
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
        event_at=event_at,
        share=share,
    )


def consumed_without_claim(session: Session, job_id: int) -> Target | None:
    """A message found its job not claimable: the job, if due, now waits without a message.

    A job that is due but could not be claimed waits behind an earlier event of its alert (or
    has expired); it is fed again when that one settles. A job not yet due keeps its mark: its
    own ETA message is still to come. Returns the job's (tenant, queue), so the tenant's
    share of the queue can be topped up.
    """
    row = _run(session, _CONSUMED_WITHOUT_CLAIM, job_id=job_id, tolerance=SCHEDULE_TOLERANCE.total_seconds()).first()
    return (row.tenant_id, row.queue) if row else None


def hold(session: Session, claimed: ClaimedJob, reason: str, wait_seconds: float = 0.0) -> bool:
    """Give a claim back unspent: its channel is busy or its circuit open. False if stale.

    The attempt is not counted; the job waits, without a message, until its channel feeds it.
    """
    restored = JobStatus.PENDING if claimed.budget_attempt == 1 else JobStatus.RETRYING
    result = _run(
        session, _HOLD, job_id=claimed.job_id, attempt=claimed.attempt, restored=str(restored), reason=reason, wait=wait_seconds
    )
    return result.rowcount == 1


@dataclass(frozen=True)
class Recorded:
    """What recording an outcome did: the job's new status (None when stale) and jobs to feed."""

    status: JobStatus | None
    to_send: list[Target]
    # Whether jobs wait for the job's channel (a freed slot should feed one).
    channel_held: bool = False
    # The tenant's share of the job's queue after the outcome (None when stale).
    share: Share | None = None

    @property
    def stale(self) -> bool:
        return self.status is None


def record_outcome(session: Session, record: AttemptRecord) -> Recorded:
    """Write one attempt's outcome: its log row, and the job's state if the claim is still its own.

    The job changes only while it is SENDING under this very attempt (one conditional
    UPDATE): the outcome of an attempt whose lease expired is logged against its attempt and
    never moves the job (a DELIVERED job never goes back). A settled job feeds the next event
    of its alert on its channel.
    """
    if record.success:
        status = JobStatus.DELIVERED
    elif record.will_retry:
        status = JobStatus.RETRYING
    else:
        status = JobStatus.FAILED
    error = None if record.success else record.detail
    late_error = (error or "delivered") + LATE_OUTCOME
    params = dict(
        job_id=record.job_id,
        attempt=record.attempt,
        status=str(status),
        last_error=error,
        delivered=record.success,
        retrying=status == JobStatus.RETRYING,
        retry_in=record.retry_in or 0.0,
        eta=status == JobStatus.RETRYING and record.eta_message,
    )
    if isinstance(session, Work) and record.alert_id is not None:
        # The job's row lock first, in a statement of its own: a later event of the alert whose
        # transaction holds it (app.alerts.jobs_to_send) has committed when the statement after
        # starts, so its snapshot sees that event's jobs waiting. Taken by the UPDATE itself,
        # the lock would be waited for with the snapshot already taken, blind to them. Both
        # go in one message, the whole unit of work.
        defer(session, _LOCK_JOB, job_id=record.job_id)
        row = run_alone(
            session,
            _RECORD_AND_LOG,
            **{**params, **_log_params(record, error)},
            alert_id=record.alert_id,
            channel_id=record.channel_id,
            late_error=late_error,
            settles=status != JobStatus.RETRYING,
        ).first()
        if row is None:
            return Recorded(None, [])
        to_send = [(row.successor_id, row.successor_queue)] if row.successor_id is not None else []
        return Recorded(status, to_send, bool(row.channel_held), Share(row.queued, row.backlog))
    if is_postgres(session):
        _run(session, _LOCK_JOB, job_id=record.job_id)
        row = facts = _run(session, _RECORD, **params).first()
    else:
        row = _run(session, _RECORD_ALONE, **params).first()
        if row is not None:
            facts = _run(
                session, _OUTCOME_FACTS, tenant_id=row.tenant_id, alert_id=row.alert_id, channel_id=row.channel_id, job_id=record.job_id, queue=row.queue
            ).first()
    if row is None:
        _log_attempt(session, record, late_error)
        return Recorded(None, [])
    _log_attempt(session, record, error)
    to_send: list[Target] = []
    if status != JobStatus.RETRYING and facts.later_waiting:
        to_send = release_successor(session, record.tenant_id, row.alert_id, row.channel_id, record.job_id)
    return Recorded(status, to_send, bool(facts.channel_held), Share(facts.queued, facts.backlog))


_LOG_COLUMNS = ("tenant_id", "job_id", "attempt", "success", "status_code", "error", "duration_ms", "created_at")


def _log_values(error=None):
    """The log row's values from the bound parameters, in `_LOG_COLUMNS` order."""
    return (
        cast(bindparam("p_tenant_id"), String),
        cast(bindparam("p_job_id"), BigInteger),
        cast(bindparam("p_attempt"), Integer),
        cast(bindparam("p_success"), Boolean),
        cast(bindparam("p_status_code"), Integer),
        cast(bindparam("p_error"), String) if error is None else error,
        cast(bindparam("p_duration_ms"), Float),
        DbNow(),
    )


def _log_upsert(insert):
    # One row per attempt. A row the sweeper wrote for a lease that expired (outcome unknown,
    # no duration) is corrected by the attempt's own late outcome; any other is kept.
    return insert.on_conflict_do_update(
        index_elements=["job_id", "attempt"],
        set_={
            "success": insert.excluded.success,
            "status_code": insert.excluded.status_code,
            "error": insert.excluded.error,
            "duration_ms": insert.excluded.duration_ms,
        },
        where=LOG.c.duration_ms.is_(None),
    )


def _log_statement(dialect_insert):
    return _log_upsert(dialect_insert(LOG).values(dict(zip(_LOG_COLUMNS, _log_values()))))


def _record_and_log():
    """PostgreSQL writes an outcome in one statement: the job, its log row, the successor fed.

    The log row's error says whether the claim was still the attempt's own (`p_error`) or the
    job had moved on (`p_late_error`); the successor is fed only when the job settled
    (`p_settles`) and a later event of its alert waits on its channel.
    """
    recorded = _RECORD.cte("recorded")
    error = case((exists(select(recorded.c.alert_id)), cast(bindparam("p_error"), String)), else_=cast(bindparam("p_late_error"), String))
    logged = _log_upsert(postgresql.insert(LOG).from_select(_LOG_COLUMNS, select(*_log_values(error)))).cte("logged")
    # The alert as a bound parameter, so the plan looks the successor up by its alert; the
    # EXISTS is evaluated once, before any row is read.
    releases = and_(cast(bindparam("p_settles"), Boolean), exists(select(recorded.c.alert_id).where(recorded.c.later_waiting)))
    successor = _successor(cast(bindparam("p_alert_id"), BigInteger), releases).cte("successor")
    return (
        select(recorded, successor.c.job_id.label("successor_id"), successor.c.queue.label("successor_queue"))
        .select_from(recorded.outerjoin(successor, true()))
        .add_cte(logged)
    )


_RECORD_AND_LOG = prepared(_record_and_log())
_LOG_STATEMENTS: dict[str, Any] = {}


def _log_attempt(session: Session, record: AttemptRecord, error: str | None) -> None:
    dialect = "postgresql" if is_postgres(session) else "sqlite"
    if dialect not in _LOG_STATEMENTS:
        _LOG_STATEMENTS[dialect] = _log_statement(insert_for(session))
    _run(session, _LOG_STATEMENTS[dialect], **_log_params(record, error))


def _log_params(record: AttemptRecord, error: str | None) -> dict[str, Any]:
    """The parameters of an attempt's log row."""
    return {
        "tenant_id": record.tenant_id,
        "job_id": record.job_id,
        "attempt": record.attempt,
        "success": record.success,
        "status_code": record.status_code,
        "error": error,
        "duration_ms": record.duration_ms,
    }


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
            created_at=DbNow(),
        )
        .on_conflict_do_nothing(index_elements=["job_id", "attempt"])
    )


def queued_count(session: Session, tenant_id: str, queue: str) -> int:
    """How many of a tenant's jobs have a message waiting in `queue`."""
    return _run(session, _QUEUED_COUNT, tenant_id=tenant_id, queue=queue).scalar()


def feed_tenant(session: Session, tenant_id: str, queue: str, settings: DeliverySettings) -> list[Target]:
    """Top up the tenant's share of `queue` with its oldest waiting jobs, up to the depth."""
    return _targets(
        _run(session, _FEED_TENANT, tenant_id=tenant_id, queue=queue, depth=settings.tenant_queue_depth, max_age=settings.max_age_seconds)
    )


def feed_channel(session: Session, channel_id: int, slots: int, settings: DeliverySettings) -> list[Target]:
    """Feed up to `slots` of the jobs held for a busy channel, oldest first."""
    if slots <= 0:
        return []
    return _targets(_run(session, _FEED_CHANNEL, channel_id=channel_id, slots=slots, max_age=settings.max_age_seconds))


def has_held(session: Session, channel_id: int) -> bool:
    """Whether jobs wait for this channel (busy, or its circuit open)."""
    return bool(_run(session, _HAS_HELD, channel_id=channel_id).scalar())


def release_circuit_holds(session: Session, channel_id: int) -> int:
    """The channel's circuit closed: its jobs held for the circuit now wait for a free slot."""
    return _run(session, _RELEASE_CIRCUIT_HOLDS, channel_id=channel_id).rowcount


def feed_probe(session: Session, channel_id: int, settings: DeliverySettings) -> list[Target]:
    """Feed the oldest job held for the channel's circuit: the probe once its open period passed."""
    return _targets(_run(session, _FEED_PROBE, channel_id=channel_id, max_age=settings.max_age_seconds))


def release_successor(session: Session, tenant_id: str, alert_id: int, channel_id: int, job_id: int) -> list[Target]:
    """A job settled: the next event of its alert on its channel may go now, if it waits."""
    return _targets(_run(session, _RELEASE_SUCCESSOR, tenant_id=tenant_id, alert_id=alert_id, channel_id=channel_id, job_id=job_id))


def unmark(session: Session, job_ids: list[int]) -> None:
    """Their messages could not be sent (the broker is down): they wait to be fed again."""
    if job_ids:
        _run(session, _UNMARK, job_ids=list(job_ids))


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
    if session.scalar(select(NotificationChannel.deleted_at).where(NotificationChannel.channel_id == job.channel_id)) is not None:
        return "its channel was deleted: there is nowhere to send it"
    if superseded(session, job):
        return "superseded: a later event of this alert was already delivered on this channel"
    session.execute(
        update(Job)
        .where(Job.job_id == job.job_id, Job.status == JobStatus.FAILED)
        .values(
            status=JobStatus.PENDING,
            attempts_at_replay=Job.attempts,
            next_attempt_at=DbNow(),
            replayed_at=DbNow(),
            enqueued_at=None,
            hold=None,
            updated_at=DbNow(),
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(job)
    return None
