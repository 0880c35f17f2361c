"""Beat tasks: the sweep of the jobs table, the queue probes, retention."""

from __future__ import annotations

from datetime import timedelta

from app.maintenance import purge_old_records
from app.models import utcnow
from tasks import celery


@celery.task(name="pulse.sweep_lost_jobs", ignore_result=True)
def sweep_lost_jobs() -> int:
    """Expired leases and jobs, lost messages, due and held jobs (app.delivery.sweep)."""
    return len(celery.services.sweeper.run().to_send)


@celery.task(name="pulse.queue_probe", ignore_result=True)
def queue_probe(queue: str, sent_at: float) -> None:
    """A probe came out of `queue`: every message sent down it before `sent_at` has too."""
    celery.services.watermarks.advance(queue, sent_at)


@celery.task(name="pulse.purge_old_records", ignore_result=True)
def purge_old_records_task() -> int:
    """Drop telemetry and settled deliveries of closed alerts older than the retention period."""
    services = celery.services
    with services.db.session() as session:
        return purge_old_records(session, utcnow() - timedelta(days=services.settings.retention_days))
