"""What the beat does every `SWEEP_INTERVAL_SECONDS`: the database is the source of truth.

One sweep, in order:

1. **Expired leases.** A SENDING job whose lease passed lost its worker mid-attempt. If the
   attempt's outcome waits in the outbox (the database was down when it ended), it is written
   now; otherwise the attempt is logged as lost (outcome unknown) and counts as a failed
   attempt: the job goes round again at once (same id: at least once), or is dead-lettered if
   that was its last allowed attempt.
2. **Expired jobs.** A job still undelivered `DELIVERY_MAX_AGE_SECONDS` after its creation (or
   its last replay) is dead-lettered, saying so.
3. **Lost messages.** A job whose message is provably gone waits without one again. Proof: the
   sweeper sends a probe message down each queue; a consumed probe raises the queue's
   watermark to the time it was sent, and a queue is first-in first-out, so a message sent
   before the watermark was consumed or lost. A job marked as having a message sent before
   the watermark, due longer than the grace and still not claimed, lost it. A job still waiting
   in a healthy (even a long) queue is never sent twice.
4. **Due jobs.** Jobs that wait without a message and are due (a long retry whose time came, a
   lost message, a replay) are fed, each tenant up to its share of each queue.
5. **Held jobs.** A channel whose circuit's open period passed gets its probe; a channel with
   free slots gets its held jobs; jobs held for a circuit Redis no longer knows of are freed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import redis
from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from app.config import DeliverySettings
from app.db import Database, DbNow, db_after, db_now
from app.delivery.admission import ChannelAdmission
from app.delivery.jobs import (
    JOBS,
    WAITING,
    Target,
    _fresh,
    _not_blocked,
    feed_channel,
    feed_probe,
    log_lost_attempt,
    queued_count,
    record_outcome,
    release_circuit_holds,
    release_successor,
)
from app.delivery.outbox import OutcomeOutbox
from app.delivery.policy import attempts_left
from app.dispatch import Dispatcher
from app.models import HOLD_CHANNEL_BUSY, HOLD_CIRCUIT_OPEN, NotificationChannel, NotificationJob
from app.severity import QUEUES
from app.status import WAITING_JOB_STATUSES, JobStatus

log = logging.getLogger(__name__)
Job = NotificationJob

WATERMARKS = "pulse:queue-watermarks"
# A message is published just after the transaction that marked its job commits; a probe sent
# in that instant could overtake it. Messages marked this shortly before a watermark are not
# yet taken for lost.
PUBLISH_MARGIN = timedelta(seconds=5)
BATCH = 500
LOST_WORKER = "worker lost during the attempt: its lease expired before it reported; outcome unknown"


@dataclass
class SweepReport:
    """What one sweep did, for its log line and the tests."""

    leases_expired: int = 0
    outcomes_written: int = 0
    jobs_expired: int = 0
    messages_lost: int = 0
    fed: int = 0
    to_send: list[Target] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any((self.leases_expired, self.outcomes_written, self.jobs_expired, self.messages_lost, self.fed))


class Watermarks:
    """Per queue, the send time of the newest probe a worker has consumed (Redis)."""

    def __init__(self, client: redis.Redis):
        self._redis = client

    def advance(self, queue: str, sent_at: float) -> None:
        """A probe sent at `sent_at` (epoch seconds) came out of `queue`."""
        self._redis.zadd(WATERMARKS, {queue: sent_at}, gt=True)

    def read(self) -> dict[str, datetime]:
        try:
            members = self._redis.zrange(WATERMARKS, 0, -1, withscores=True)
        except redis.RedisError:
            return {}
        return {member.decode(): datetime.fromtimestamp(score, timezone.utc) for member, score in members}


def expire_leases(session: Session, settings: DeliverySettings, outbox: OutcomeOutbox, report: SweepReport) -> None:
    """Step 1: SENDING jobs whose lease passed."""
    jobs = session.scalars(
        select(Job)
        .where(Job.status == JobStatus.SENDING, Job.next_attempt_at < db_now(session))
        .order_by(Job.next_attempt_at)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    for job in jobs:
        pending = outbox.get(job.job_id, job.attempts)
        if pending is not None:
            report.to_send += record_outcome(session, pending).to_send
            outbox.discard(job.job_id, job.attempts)
            report.outcomes_written += 1
            continue
        log_lost_attempt(session, job, LOST_WORKER)
        job.enqueued_at = None
        job.updated_at = db_now(session)
        if attempts_left(job.attempts - job.attempts_at_replay, settings):
            # The receiver may well be fine: the worker died. Go again now.
            job.status = JobStatus.RETRYING
            job.last_error = "worker lost during the attempt"
            job.next_attempt_at = db_now(session)
        else:
            job.status = JobStatus.FAILED
            job.last_error = f"{LOST_WORKER} (attempt {job.attempts - job.attempts_at_replay} of {settings.attempts_allowed})"
            session.flush()
            report.to_send += release_successor(session, job.tenant_id, job.alert_id, job.channel_id, job.job_id)
        report.leases_expired += 1
        log.warning(
            "attempt %s of job %s lost its worker", job.attempts, job.job_id,
            extra={"job_id": job.job_id, "alert_id": job.alert_id, "tenant_id": job.tenant_id},
        )
    session.flush()


def expire_old(session: Session, settings: DeliverySettings, report: SweepReport) -> None:
    """Step 2: dead-letter what waited longer than DELIVERY_MAX_AGE_SECONDS."""
    rows = session.execute(
        update(Job)
        .where(
            Job.status.in_(WAITING_JOB_STATUSES),
            func.coalesce(Job.replayed_at, Job.created_at) <= db_after(session, -settings.max_age_seconds),
        )
        .values(
            status=JobStatus.FAILED,
            last_error=f"expired: not delivered within {settings.max_age_seconds:g} s of its creation (DELIVERY_MAX_AGE_SECONDS)",
            enqueued_at=None,
            hold=None,
            updated_at=db_now(session),
        )
        .returning(Job.job_id, Job.tenant_id, Job.alert_id, Job.channel_id)
        .execution_options(synchronize_session=False)
    ).all()
    for row in rows:
        report.to_send += release_successor(session, row.tenant_id, row.alert_id, row.channel_id, row.job_id)
    report.jobs_expired += len(rows)


def reclaim_lost(session: Session, watermarks: dict[str, datetime], grace: timedelta, report: SweepReport) -> None:
    """Step 3: jobs whose message went down a queue past its watermark and never arrived."""
    for queue, watermark in watermarks.items():
        report.messages_lost += session.execute(
            update(Job)
            .where(
                Job.queue == queue,
                Job.status.in_(WAITING_JOB_STATUSES),
                Job.enqueued_at.is_not(None),
                Job.enqueued_at < watermark - PUBLISH_MARGIN,
                Job.next_attempt_at < db_after(session, -grace.total_seconds()),
            )
            .values(enqueued_at=None)
            .execution_options(synchronize_session=False)
        ).rowcount


def feed_due(session: Session, settings: DeliverySettings, report: SweepReport) -> None:
    """Step 4: due jobs without a message, each tenant up to its share of each queue."""
    waiting = and_(
        JOBS.c.status.in_(WAITING),
        JOBS.c.enqueued_at.is_(None),
        JOBS.c.hold.is_(None),
        JOBS.c.next_attempt_at <= DbNow(),
        _fresh(),
        _not_blocked(),
    )
    ranked = (
        select(
            JOBS.c.job_id,
            JOBS.c.tenant_id,
            JOBS.c.queue,
            func.row_number().over(partition_by=(JOBS.c.tenant_id, JOBS.c.queue), order_by=JOBS.c.job_id).label("rank"),
        )
        .where(waiting)
        .subquery()
    )
    age = {"p_max_age": settings.max_age_seconds}
    pairs = session.execute(select(ranked.c.tenant_id, ranked.c.queue).distinct(), age).all()
    chosen: list[int] = []
    for tenant_id, queue in pairs:
        room = settings.tenant_queue_depth - queued_count(session, tenant_id, queue)
        if room > 0:
            chosen += session.scalars(
                select(ranked.c.job_id)
                .where(ranked.c.tenant_id == tenant_id, ranked.c.queue == queue, ranked.c.rank <= room)
                .limit(BATCH),
                age,
            ).all()
    if chosen:
        rows = session.execute(
            update(Job)
            .where(Job.job_id.in_(chosen), Job.enqueued_at.is_(None))
            .values(enqueued_at=DbNow())
            .returning(Job.job_id, Job.queue)
            .execution_options(synchronize_session=False)
        ).all()
        report.to_send += sorted((row.job_id, row.queue) for row in rows)
        report.fed += len(rows)


class Sweeper:
    """The beat's sweep (see the module docstring), and the probes that prove messages lost."""

    def __init__(
        self,
        db: Database,
        settings: DeliverySettings,
        grace: timedelta,
        admission: ChannelAdmission,
        dispatcher: Dispatcher,
        outbox: OutcomeOutbox,
        watermarks: Watermarks,
    ):
        self.db = db
        self.settings = settings
        self.grace = grace
        self.admission = admission
        self.dispatcher = dispatcher
        self.outbox = outbox
        self.watermarks = watermarks

    def run(self) -> SweepReport:
        """One sweep; the messages it decided on are sent after its transaction commits."""
        report = SweepReport()
        marks = self.watermarks.read()
        # The beat is Pulse's own cross-tenant work: it says so with the system scope.
        with self.db.system_scope("sweeper") as session:
            expire_leases(session, self.settings, self.outbox, report)
            expire_old(session, self.settings, report)
            reclaim_lost(session, marks, self.grace, report)
            feed_due(session, self.settings, report)
            held = self._held_channels(session, report)
            sent_at = session.scalar(select(db_now(session)))
        self.dispatcher.send(report.to_send)
        for tenant_id, channel_id in held:
            self._feed_held(tenant_id, channel_id)
        self.send_probes(sent_at)
        if report:
            log.info(
                "sweep: %d lease(s) expired, %d outcome(s) written from the outbox, %d job(s) expired, "
                "%d lost message(s), %d job(s) fed",
                report.leases_expired, report.outcomes_written, report.jobs_expired, report.messages_lost, report.fed,
            )
        return report

    def _held_channels(self, session: Session, report: SweepReport) -> list[tuple[str, int]]:
        """Step 5, in the sweep's transaction: probes due, and which channels hold jobs."""
        open_circuits = self.admission.open_circuits()
        now = datetime.now(timezone.utc)
        rows = session.execute(
            select(Job.channel_id, Job.hold, NotificationChannel.tenant_id)
            .join(NotificationChannel, NotificationChannel.channel_id == Job.channel_id)
            .where(Job.hold.is_not(None), Job.status.in_(WAITING_JOB_STATUSES))
            .group_by(Job.channel_id, Job.hold, NotificationChannel.tenant_id)
        ).all()
        busy: list[tuple[str, int]] = []
        for channel_id, reason, tenant_id in rows:
            if reason == HOLD_CIRCUIT_OPEN:
                until = open_circuits.get(channel_id)
                if until is None:
                    # Redis forgot the circuit (or it closed unseen): the jobs wait for slots.
                    release_circuit_holds(session, channel_id)
                    busy.append((tenant_id, channel_id))
                elif until <= now:
                    report.to_send += feed_probe(session, channel_id, self.settings)
            elif reason == HOLD_CHANNEL_BUSY:
                busy.append((tenant_id, channel_id))
        return busy

    def _feed_held(self, tenant_id: str, channel_id: int) -> None:
        free = self.admission.free_slots(channel_id)
        if free:
            with self.db.session(tenant_id) as session:
                self.dispatcher.send(feed_channel(session, channel_id, free, self.settings))

    def send_probes(self, sent_at: datetime) -> None:
        """A probe down every queue; consumed, it raises that queue's watermark."""
        self.dispatcher.enqueuer.send_probes(QUEUES, sent_at.timestamp())
