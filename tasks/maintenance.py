"""Beat tasks: the sweep of the jobs table, the queue probes, retention."""

from __future__ import annotations

import logging
from datetime import timedelta

from app.delivery.service import DATABASE_ERRORS
from app.maintenance import purge_old_records
from app.models import utcnow
from tasks import celery

log = logging.getLogger(__name__)


@celery.task(name="pulse.sweep_lost_jobs", ignore_result=True)
def sweep_lost_jobs() -> int:
    """Expired leases and jobs, lost messages, due and held jobs (app.delivery.sweep)."""
    try:
        return len(celery.services.sweeper.run().to_send)
    except DATABASE_ERRORS as exc:
        # An outage, not a bug: the next sweep does the work once the database is back.
        log.warning("sweep skipped, the database is unavailable: %s", type(getattr(exc, "orig", exc)).__name__)
        return 0


@celery.task(name="pulse.sweep_on_call", ignore_result=True)
def sweep_on_call() -> int:
    """Release what ended silences held back; create due escalation jobs (app.oncall)."""
    try:
        report = celery.services.on_call.run()
    except DATABASE_ERRORS as exc:
        log.warning("on-call sweep skipped, the database is unavailable: %s", type(getattr(exc, "orig", exc)).__name__)
        return 0
    return report.released + report.escalated_jobs


@celery.task(name="pulse.queue_probe", ignore_result=True)
def queue_probe(queue: str, sent_at: float) -> None:
    """A probe came out of `queue`: every message sent down it before `sent_at` has too."""
    celery.services.watermarks.advance(queue, sent_at)


@celery.task(name="pulse.purge_old_records", ignore_result=True)
def purge_old_records_task() -> int:
    """Drop telemetry and settled deliveries of closed alerts older than the retention period."""
    services = celery.services
    with services.db.system_scope("maintenance") as session:
        return purge_old_records(session, utcnow() - timedelta(days=services.settings.retention_days))
