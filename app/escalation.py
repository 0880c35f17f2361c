"""Escalation (DESIGN §6a): an alert still OPEN after a rule's step delay notifies more channels.

A routing rule may carry steps `[{after_seconds, channel_ids}]`. When the rule's OPEN job for
an alert was neither throttled nor suppressed, and the alert is still OPEN `after_seconds`
after it was triggered (or after a silence's end released that OPEN), step k creates one
`ESCALATED` job per channel of the step, with `escalation_step` k. Each step is decided from
the alert's state in the database when the beat looks, and the jobs' unique key (alert,
channel, event type, step) makes it happen once however many beats look at once. The alert
row's lock orders it against an acknowledge or close, which stop the escalation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.alerts import store_event
from app.db import db_now, insert_for
from app.models import Alert, NotificationChannel, NotificationJob, RoutingRule
from app.severity import queue_for
from app.status import UNSENT_JOB_STATUSES, AlertStatus, Event, JobStatus

BATCH = 500


@dataclass(frozen=True)
class DueStep:
    """One step of one rule that is due for one alert."""

    step: int
    channel_ids: tuple[int, ...]


def due_steps(steps: list[dict[str, Any]] | None, since: datetime, now: datetime) -> list[DueStep]:
    """The steps (1-based) whose delay after `since` has passed at `now`."""
    return [
        DueStep(number, tuple(step["channel_ids"]))
        for number, step in enumerate(steps or [], start=1)
        if since + timedelta(seconds=step["after_seconds"]) <= now
    ]


@dataclass
class Escalated:
    """What one pass created: the alerts escalated (with their new steps) and the jobs."""

    alerts: dict[int, Alert] = field(default_factory=dict)
    jobs: int = 0
    queues: set[tuple[str, str]] = field(default_factory=set)


def escalate_due(session: Session, now: datetime) -> Escalated:
    """Create the ESCALATED jobs that are due at `now`, across tenants, in the caller's transaction."""
    candidates = (
        select(
            NotificationJob.job_id,
            NotificationJob.alert_id,
            NotificationJob.released_at,
            RoutingRule.rule_id,
            RoutingRule.escalation,
            Alert.triggered_at,
        )
        .join(Alert, Alert.alert_id == NotificationJob.alert_id)
        .join(RoutingRule, RoutingRule.rule_id == NotificationJob.rule_id)
        .where(
            NotificationJob.event_type == Event.OPEN,
            NotificationJob.escalation_step == 0,
            NotificationJob.status.not_in(UNSENT_JOB_STATUSES),
            Alert.status == AlertStatus.OPEN,
            RoutingRule.escalation.is_not(None),
            RoutingRule.is_enabled.is_(True),
        )
        .order_by(NotificationJob.job_id)
        .limit(BATCH)
    )
    # Every open alert with escalation steps is looked at on each pass, a batch at a time.
    rows: list = []
    after = 0
    while True:
        batch = session.execute(candidates.where(NotificationJob.job_id > after)).all()
        rows += batch
        if len(batch) < BATCH:
            break
        after = batch[-1].job_id
    # alert -> step -> channel -> the rule whose step it is (the first, by rule id).
    wanted: dict[int, dict[int, dict[int, int]]] = {}
    for row in sorted(rows, key=lambda r: r.rule_id):
        for due in due_steps(row.escalation, row.released_at or row.triggered_at, now):
            channels = wanted.setdefault(row.alert_id, {}).setdefault(due.step, {})
            for channel_id in due.channel_ids:
                channels.setdefault(channel_id, row.rule_id)
    outcome = Escalated()
    for alert_id, steps in wanted.items():
        existing = set(
            session.execute(
                select(NotificationJob.channel_id, NotificationJob.escalation_step).where(
                    NotificationJob.alert_id == alert_id, NotificationJob.event_type == Event.ESCALATED
                )
            ).tuples()
        )
        missing = {step: {c: r for c, r in channels.items() if (c, step) not in existing} for step, channels in steps.items()}
        missing = {step: channels for step, channels in missing.items() if channels}
        if missing:
            _escalate(session, alert_id, missing, now, outcome)
    return outcome


def _escalate(session: Session, alert_id: int, steps: dict[int, dict[int, int]], now: datetime, outcome: Escalated) -> None:
    # The lock waits for an acknowledge or close in flight; either way the status read here is final.
    alert = session.scalars(select(Alert).where(Alert.alert_id == alert_id).with_for_update()).first()
    if alert is None or alert.status != AlertStatus.OPEN:
        return
    enabled = set(
        session.scalars(
            select(NotificationChannel.channel_id).where(
                NotificationChannel.tenant_id == alert.tenant_id,
                NotificationChannel.is_enabled.is_(True),
                NotificationChannel.channel_id.in_({c for channels in steps.values() for c in channels}),
            )
        )
    )
    queue = queue_for(alert.severity)
    created = 0
    for step in sorted(steps):
        channels = sorted(set(steps[step]) & enabled)
        if not channels:
            continue
        event_id = store_event(session, alert, Event.ESCALATED, step, now)
        inserted = session.execute(
            insert_for(session)(NotificationJob)
            .values(
                [
                    {
                        "tenant_id": alert.tenant_id,
                        "alert_id": alert.alert_id,
                        "channel_id": channel_id,
                        "rule_id": steps[step][channel_id],
                        "event_id": event_id,
                        "event_type": Event.ESCALATED,
                        "escalation_step": step,
                        "status": JobStatus.PENDING,
                        "queue": queue,
                        "attempts": 0,
                        "attempts_at_replay": 0,
                        "next_attempt_at": db_now(session),
                        "created_at": now,
                        "updated_at": now,
                    }
                    for channel_id in channels
                ]
            )
            # Another beat (or this one, before a restart) may have made them already: once only.
            .on_conflict_do_nothing(index_elements=["tenant_id", "alert_id", "channel_id", "event_type", "escalation_step"])
            .returning(NotificationJob.job_id)
        ).all()
        created += len(inserted)
    if created:
        outcome.alerts[alert.alert_id] = alert
        outcome.jobs += created
        outcome.queues.add((alert.tenant_id, queue))
