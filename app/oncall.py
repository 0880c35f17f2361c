"""The beat's on-call pass, every `SWEEP_INTERVAL_SECONDS`: ended silences and due escalations.

1. Suppressed OPEN jobs whose silence stopped holding are released (`app.silences`).
2. Escalation steps that came due create their ESCALATED jobs (`app.escalation`).

The new jobs' messages are sent after the commit; each escalated alert is pushed to the
live feed as an `alert` event `ESCALATED`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select

from app.config import DeliverySettings
from app.db import Database
from app.delivery.jobs import feed_tenant
from app.dispatch import Dispatcher
from app.escalation import escalate_due
from app.events import EventPublisher
from app.models import NotificationJob, utcnow
from app.silences import release_ended
from app.status import Event

log = logging.getLogger(__name__)


@dataclass
class OnCallReport:
    """What one pass did, for its log line and the tests."""

    released: int = 0
    escalated_jobs: int = 0
    sent: int = 0


class OnCallSweep:
    """Releases what ended silences held back and sends due escalation steps."""

    def __init__(self, db: Database, settings: DeliverySettings, dispatcher: Dispatcher, events: EventPublisher):
        self.db = db
        self.settings = settings
        self.dispatcher = dispatcher
        self.events = events

    def run(self) -> OnCallReport:
        from app.views import AlertView

        report = OnCallReport()
        now = utcnow()
        # The beat's own cross-tenant work.
        with self.db.system_scope("on-call") as session:
            released = release_ended(session, now)
            queues: set[tuple[str, str]] = set()
            if released.released:
                queues |= set(
                    session.execute(
                        select(NotificationJob.tenant_id, NotificationJob.queue).where(NotificationJob.job_id.in_(released.released))
                    ).tuples()
                )
            escalated = escalate_due(session, now)
            queues |= escalated.queues
            to_send = []
            for tenant_id, queue in sorted(queues):
                to_send += feed_tenant(session, tenant_id, queue, self.settings)
            views = [AlertView.of(alert).model_dump(mode="json") for alert in escalated.alerts.values()]
        report.released = len(released.released)
        report.escalated_jobs = escalated.jobs
        report.sent = self.dispatcher.send(to_send)
        for view in views:
            self.events.alert_changed(view["tenant_id"], Event.ESCALATED, view)
        if report.released or report.escalated_jobs:
            log.info("on-call: %d suppressed job(s) released, %d escalation job(s) created", report.released, report.escalated_jobs)
        return report
