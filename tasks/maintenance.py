"""Beat tasks: re-send jobs whose message was lost; purge old records."""

from __future__ import annotations

import logging
from datetime import timedelta

from app.delivery import find_lost
from app.dispatch import send_jobs
from app.maintenance import purge_old_records, sweep_grace
from app.models import utcnow
from tasks import celery

log = logging.getLogger(__name__)


@celery.task(name="pulse.sweep_lost_jobs", ignore_result=True)
def sweep_lost_jobs() -> int:
    """Send again every job whose message is overdue: the database is the source of truth."""
    services = celery.services
    with services.db.session() as session:
        lost = find_lost(session, utcnow(), sweep_grace(services.settings))
    if lost:
        sent = send_jobs(services.enqueuer, lost)
        log.warning("sweeper re-sent %d of %d lost job(s)", sent, len(lost))
        return sent
    return 0


@celery.task(name="pulse.purge_old_records", ignore_result=True)
def purge_old_records_task() -> int:
    """Drop telemetry and settled deliveries of closed alerts older than the retention period."""
    services = celery.services
    with services.db.session() as session:
        return purge_old_records(session, utcnow() - timedelta(days=services.settings.retention_days))
