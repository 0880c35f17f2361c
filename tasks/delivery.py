"""`pulse.deliver`: one attempt at one notification job, retried by Celery's autoretry.

The task body only claims and sends (app.delivery.attempt_delivery). The results hook on the
task class writes the outcome: `on_success` (DELIVERED), `on_retry` (a failed attempt that
will be retried: RETRYING) and `on_failure` (a permanent failure or the last attempt: FAILED,
the dead-letter queue). Each writes one delivery_log row per attempt.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import timedelta

from celery import Task

from app.channels import DeliveryError, TransientError
from app.delivery import (
    AttemptOutcome,
    attempt_delivery,
    record_failure,
    record_retry,
    record_success,
    retry_delay,
)
from app.models import utcnow
from tasks import celery

log = logging.getLogger(__name__)


class DeliveryTask(Task):
    """Results hook and retry schedule of deliveries."""

    def retry(self, args=None, kwargs=None, exc=None, throw=True, eta=None, countdown=None, max_retries=None, **options):
        # Autoretry lands here for every TransientError. The delay comes from the one retry
        # policy, counted from the job's attempts in the database (not from this message's
        # retry count, which restarts when the sweeper re-sends a lost job), and never
        # sooner than the receiver's Retry-After.
        if isinstance(exc, TransientError) and hasattr(exc, "budget_attempt"):
            delay = retry_delay(exc.budget_attempt, self.app.services.settings.delivery, exc.retry_after)
            exc.next_attempt_at = utcnow() + timedelta(seconds=delay)
            eta, countdown = exc.next_attempt_at, None
        return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)

    def on_success(self, retval, task_id, args, kwargs):
        if retval and "job_id" in retval:
            record_success(self.app.services.db, AttemptOutcome(**retval))

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        if isinstance(exc, DeliveryError):
            record_retry(self.app.services.db, exc, exc.next_attempt_at)

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        if isinstance(exc, DeliveryError):
            record_failure(self.app.services.db, exc)
        else:
            # The database or another dependency failed before or after the send; the job
            # keeps its state in the database and the sweeper sends it again.
            log.error("delivery of job %s interrupted: %s", args[0] if args else "?", exc)


@celery.task(
    bind=True,
    base=DeliveryTask,
    name="pulse.deliver",
    autoretry_for=(TransientError,),
    max_retries=None,
    acks_late=True,
    reject_on_worker_lost=True,
)
def deliver(self, job_id: int) -> dict | None:
    """Claim job `job_id` and make one attempt; None when it was not this message's to send."""
    services = self.app.services
    outcome = attempt_delivery(services.db, services.box, job_id, services.settings.delivery)
    return asdict(outcome) if outcome else None
