"""Alert lifecycle (open, acknowledge, close) and the jobs each event creates.

Everything here runs inside the caller's transaction: the alert's state change and its
notification jobs commit together or not at all. Sending the jobs' Celery messages and
publishing the live event happen after the commit (see `app.dispatch`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, exists, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app import silences
from app.config import DeliverySettings
from app.db import Work, db_now, insert_for, is_postgres, run
from app.delivery.jobs import feed_tenant
from app.models import (
    Alert,
    AlertEvent,
    Device,
    NotificationJob,
    RoutingRule,
    utcnow,
)
from app.payload import notification_payload
from app.routing import JOB_OUTCOMES, SUPPRESSED, THROTTLED, AlertFacts, RuleDecision, decide, effective_tags
from app.severity import queue_for
from app.status import UNSENT_JOB_STATUSES, UNSETTLED_JOB_STATUSES, AlertStatus, Event, JobStatus
from app.tenant_routing import ROUTING

# The predicate of the partial unique index `uq_alerts_active_fingerprint`, as a literal so
# PostgreSQL can match ON CONFLICT to that index.
ACTIVE_FINGERPRINT = text("status IN ('OPEN', 'ACKNOWLEDGED')")


class Conflict(Exception):
    """A state change that the alert's current state does not allow."""


@dataclass(frozen=True, order=True)
class NewJob:
    """A job this event created: what the dispatcher needs to send its message."""

    job_id: int
    queue: str
    status: str


@dataclass
class AlertOutcome:
    """The result of one lifecycle call: the alert, whether anything changed, the new jobs."""

    alert: Alert
    event: str | None
    created: bool = False
    jobs: list[NewJob] = field(default_factory=list)

    @property
    def jobs_to_send(self) -> list[NewJob]:
        return [job for job in self.jobs if job.status == JobStatus.PENDING]


def derive_fingerprint(device_id: str, alert_type: str) -> str:
    """The fingerprint of an alert posted without one: same device and type, same alert."""
    digest = hashlib.sha256(json.dumps([device_id, alert_type]).encode()).hexdigest()
    return f"auto:{digest[:40]}"


def _locked(session: Session, tenant_id: str, alert_id: int) -> Alert | None:
    return session.scalars(
        select(Alert).where(Alert.tenant_id == tenant_id, Alert.alert_id == alert_id).with_for_update()
    ).first()


def acknowledge_alert(
    session: Session, tenant_id: str, alert_id: int, now: datetime | None = None, by: str | None = None
) -> AlertOutcome | None:
    """OPEN -> ACKNOWLEDGED by `by`. Repeating it changes nothing; a CLOSED alert is a Conflict."""
    alert = _locked(session, tenant_id, alert_id)
    if alert is None:
        return None
    if alert.status == AlertStatus.ACKNOWLEDGED:
        return AlertOutcome(alert, event=None)
    if alert.status == AlertStatus.CLOSED:
        raise Conflict("a closed alert cannot be acknowledged")
    now = now or utcnow()
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.acknowledged_at = now
    alert.acknowledged_by = by
    session.flush()
    return AlertOutcome(alert, event=Event.ACKNOWLEDGED, jobs=create_jobs(session, alert, Event.ACKNOWLEDGED, None, now))


def close_alert(
    session: Session, tenant_id: str, alert_id: int, now: datetime | None = None, by: str | None = None
) -> AlertOutcome | None:
    """OPEN or ACKNOWLEDGED -> CLOSED by `by`. Closing a closed alert changes nothing."""
    alert = _locked(session, tenant_id, alert_id)
    if alert is None:
        return None
    if alert.status == AlertStatus.CLOSED:
        return AlertOutcome(alert, event=None)
    now = now or utcnow()
    alert.status = AlertStatus.CLOSED
    alert.closed_at = now
    alert.closed_by = by
    session.flush()
    return AlertOutcome(alert, event=Event.CLOSED, jobs=create_jobs(session, alert, Event.CLOSED, None, now))


def _throttled(session: Session, alert: Alert, rule: RoutingRule, event_type: str, now: datetime) -> bool:
    if event_type != Event.OPEN:
        # The acknowledge and close of an alert whose OPEN was throttled are throttled too.
        return bool(
            session.scalar(
                select(
                    exists().where(
                        NotificationJob.alert_id == alert.alert_id,
                        NotificationJob.channel_id == rule.channel_id,
                        NotificationJob.event_type == Event.OPEN,
                        NotificationJob.status == JobStatus.THROTTLED,
                    )
                )
            )
        )
    return _throttle_holds(session, alert.tenant_id, alert.device_id, alert.alert_type, rule, now, besides=alert.alert_id)


_ALERT = Alert.__table__
_JOB = NotificationJob.__table__
_THROTTLE_HOLDS = select(
    exists().where(
        _JOB.c.tenant_id == bindparam("p_tenant_id"),
        _JOB.c.channel_id == bindparam("p_channel_id"),
        _JOB.c.event_type == str(Event.OPEN),
        # Nothing was sent for a throttled or suppressed job.
        _JOB.c.status.not_in([str(status) for status in UNSENT_JOB_STATUSES]),
        _JOB.c.created_at >= bindparam("p_since", type_=_JOB.c.created_at.type),
        _JOB.c.alert_id != bindparam("p_besides"),
        exists().where(
            _ALERT.c.alert_id == _JOB.c.alert_id,
            _ALERT.c.device_id == bindparam("p_device_id"),
            _ALERT.c.alert_type == bindparam("p_alert_type"),
        ),
    )
)


def _throttle_holds(
    session: Session | Work, tenant_id: str, device_id: str, alert_type: str, rule: RoutingRule, now: datetime, besides: int | None = None
) -> bool:
    """Whether the rule's throttle holds: its channel was sent an OPEN of the same device and
    type (of an alert other than `besides`) within the last `throttle_minutes`."""
    if not rule.throttle_minutes:
        return False
    held = run(
        session,
        _THROTTLE_HOLDS,
        tenant_id=tenant_id,
        channel_id=rule.channel_id,
        since=now - timedelta(minutes=rule.throttle_minutes),
        besides=-1 if besides is None else besides,  # alert ids are positive
        device_id=device_id,
        alert_type=alert_type,
    ).scalar()
    return bool(held)


def store_event(session: Session, alert: Alert, event_type: str, escalation_step: int, now: datetime) -> int:
    """The stored event (and its one payload), inserted on first use."""
    insert = insert_for(session)
    event_id = session.execute(
        insert(AlertEvent)
        .values(
            tenant_id=alert.tenant_id,
            alert_id=alert.alert_id,
            event_type=event_type,
            escalation_step=escalation_step,
            # The stored payload leaves job_id out: each job adds its own when it is sent.
            payload=notification_payload(alert, event_type, None, escalation_step),
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "alert_id", "event_type", "escalation_step"])
        .returning(AlertEvent.event_id)
    ).scalar()
    if event_id is None:
        event_id = session.scalar(
            select(AlertEvent.event_id).where(
                AlertEvent.tenant_id == alert.tenant_id,
                AlertEvent.alert_id == alert.alert_id,
                AlertEvent.event_type == event_type,
                AlertEvent.escalation_step == escalation_step,
            )
        )
    return event_id


def alert_facts(session: Session, alert: Alert, device: Device | None = None) -> AlertFacts:
    """What rule and silence matching read of an alert: its fields and its effective tags."""
    if device is None:
        device = session.get(Device, (alert.tenant_id, alert.device_id))
    return AlertFacts(
        severity=alert.severity,
        alert_type=alert.alert_type,
        device_id=alert.device_id,
        site_id=alert.site_id,
        tags=effective_tags(device.tags if device else None, alert.details),
    )


def _open_job_suppressed(session: Session, alert: Alert, channel_id: int) -> int | None:
    """The silence that suppressed this alert's OPEN on this channel, if it is still suppressed.

    Returns the silence's id, or 0 when the silence is gone (deleted) but the job stays suppressed.
    """
    row = session.execute(
        select(NotificationJob.silence_id).where(
            NotificationJob.tenant_id == alert.tenant_id,
            NotificationJob.alert_id == alert.alert_id,
            NotificationJob.channel_id == channel_id,
            NotificationJob.event_type == Event.OPEN,
            NotificationJob.status == JobStatus.SUPPRESSED,
        )
    ).first()
    return None if row is None else (row.silence_id or 0)


def route_event(
    session: Session | Work,
    tenant_id: str,
    facts: AlertFacts,
    event_type: str,
    now: datetime,
    alert: Alert | None = None,
    enabled_only: bool = True,
    version: int | None = None,
) -> list[RuleDecision]:
    """Every rule's decision for one alert event: what dispatch creates, what explain answers.

    With `alert` (a real event), an acknowledge or close is suppressed and throttled where
    the alert's OPEN was; without one (explain's hypothetical alert), they follow the
    silences and throttles in force now, as its OPEN would. `version` is the tenant's routing
    version when the caller has read it already (ingest reads it with the alert).
    """
    routing = ROUTING.get(session, tenant_id, now, version)
    # Dispatch decides only the rules the alert's type can match (see `Routing`); explain
    # answers for every rule, disabled ones included.
    rules = routing.candidates(facts.alert_type) if enabled_only else routing.rules
    enabled = routing.enabled_channels
    in_force = silences.in_force(routing.silences, now)

    def silence_for(rule: RoutingRule) -> int | None:
        if alert is not None and event_type != Event.OPEN:
            return _open_job_suppressed(session, alert, rule.channel_id)
        return silences.silence_for(in_force, facts, rule.channel_id, now)

    def throttled(rule: RoutingRule) -> bool:
        if alert is None:
            # Explain's hypothetical alert: as an OPEN of its device and type would be now.
            return _throttle_holds(session, tenant_id, facts.device_id, facts.alert_type, rule, now)
        return _throttled(session, alert, rule, event_type, now)

    return decide(rules, facts, event_type, enabled, silence_for, throttled)


def create_jobs(
    session: Session, alert: Alert, event_type: str, device: Device | None, now: datetime
) -> list[NewJob]:
    """Insert one job per matched channel for this event (a repeat inserts nothing)."""
    facts = alert_facts(session, alert, device)
    decisions = [d for d in route_event(session, alert.tenant_id, facts, event_type, now, alert) if d.outcome in JOB_OUTCOMES]
    if not decisions:
        return []
    queue = queue_for(alert.severity)
    event_id = store_event(session, alert, event_type, 0, now)
    rows = job_rows(decisions, event_type)
    inserted = insert_jobs(session, rows, tenant_id=alert.tenant_id, alert_id=alert.alert_id, event_id=event_id, event_type=event_type, queue=queue, now=now)
    return sorted(NewJob(row.job_id, queue, row.status) for row in inserted)


def job_rows(decisions: list[RuleDecision], event_type: str) -> list[dict[str, Any]]:
    """Each decided rule's job, as far as it is the job's own: channel, rule, status and why."""
    rows = []
    for decision in decisions:
        rule = decision.rule
        if decision.outcome == SUPPRESSED:
            status, why = JobStatus.SUPPRESSED, f"suppressed by silence {decision.silence_id}" if decision.silence_id else "suppressed by a silence"
        elif decision.outcome == THROTTLED:
            status, why = JobStatus.THROTTLED, "throttled"
        else:
            status, why = JobStatus.PENDING, None
        rows.append(
            {
                "channel_id": rule.channel_id,
                "rule_id": rule.rule_id,
                "status": str(status),
                "last_error": why,
                # Only an OPEN's suppression may end in a release (the others follow it).
                "silence_id": decision.silence_id or None if event_type == Event.OPEN else None,
            }
        )
    return rows


def insert_jobs(
    session: Session, rows: list[dict[str, Any]], *, tenant_id: str, alert_id: int, event_id: int, event_type: str, queue: str, now: datetime
) -> list:
    """Insert one event's jobs, `rows` as `job_rows` made them (a repeat inserts nothing);
    their (job_id, status) rows."""
    shared = {
        "tenant_id": tenant_id,
        "alert_id": alert_id,
        "event_id": event_id,
        "event_type": event_type,
        "escalation_step": 0,
        "queue": queue,
        "attempts": 0,
        "attempts_at_replay": 0,
        "created_at": now,
        "updated_at": now,
    }
    # One statement compiled once, the rows as its parameters (SQLAlchemy's "insertmanyvalues"
    # sends them as one multi-row INSERT): building a multi-row VALUES per event compiled it
    # anew each time, the largest cost of an alert's ingest.
    return session.execute(_INSERT_JOBS[is_postgres(session)], [{**row, **shared} for row in rows]).all()


def _insert_jobs(insert):
    return (
        insert(NotificationJob.__table__)
        # Due by the database's clock, which every later comparison uses.
        .values(next_attempt_at=db_now())
        .on_conflict_do_nothing(index_elements=["tenant_id", "alert_id", "channel_id", "event_type", "escalation_step"])
        .returning(NotificationJob.job_id, NotificationJob.status)
    )


_INSERT_JOBS = {True: _insert_jobs(postgresql.insert), False: _insert_jobs(sqlite.insert)}


def jobs_to_send(session: Session, outcome: AlertOutcome, settings: DeliverySettings) -> list[tuple[int, str]]:
    """The jobs whose messages go out after this event commits: the tenant's share of its queue.

    New jobs join their tenant's oldest waiting ones; a tenant with a backlog sends them as
    its earlier messages are consumed (see `app.delivery.jobs`).
    """
    if not outcome.jobs_to_send:
        return []
    if outcome.created:
        # A new alert has no earlier event whose jobs could be settling.
        return feed_tenant(session, outcome.alert.tenant_id, outcome.jobs_to_send[0].queue, settings)
    # An earlier event of this alert may be settling right now in another transaction, which
    # looks for a successor to release before this one commits. Waiting for the earlier jobs'
    # row locks makes one of the two see the other: either its outcome is committed before
    # this event is fed, or this event's jobs are committed before it looks.
    session.execute(
        select(NotificationJob.job_id)
        .where(
            NotificationJob.tenant_id == outcome.alert.tenant_id,
            NotificationJob.alert_id == outcome.alert.alert_id,
            NotificationJob.job_id < outcome.jobs_to_send[0].job_id,
            NotificationJob.status.in_(UNSETTLED_JOB_STATUSES),
        )
        .with_for_update()
    ).all()
    return feed_tenant(session, outcome.alert.tenant_id, outcome.jobs_to_send[0].queue, settings)
