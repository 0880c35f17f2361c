"""`pulse.deliver`: one attempt at one notification job, retried by Celery's autoretry.

The task body claims and sends (`Deliveries.attempt`). The results hook on the task class
writes the outcome: `on_success` (DELIVERED), `on_retry` (a failed attempt that will be
retried: RETRYING) and `on_failure` (a permanent failure or the last attempt: FAILED, the
dead-letter queue); each writes the attempt's one delivery_log row. `pulse.record_outcome`
writes an outcome the hook could not, once the database is back.
"""

from __future__ import annotations

import logging

from celery import Task
from celery.exceptions import Retry

from app.delivery.records import AttemptFailed, AttemptRecord, RetryableAttemptFailed
from app.delivery.service import DATABASE_ERRORS
from tasks import celery

log = logging.getLogger(__name__)


class DeliveryTask(Task):
    """Results hook and retry schedule of deliveries."""

    def retry(self, args=None, kwargs=None, exc=None, throw=True, eta=None, countdown=None, max_retries=None, **options):
        # Autoretry lands here for every RetryableAttemptFailed, whose record carries the one
        # retry policy's delay (counted from the job's attempts in the database, not from this
        # message's retries, and never sooner than the receiver's Retry-After).
        if isinstance(exc, RetryableAttemptFailed):
            if not exc.record.eta_message:
                # A long delay waits in the database; the beat sends the job when it is due.
                raise Retry(exc=exc, when=exc.record.retry_in)
            eta, countdown = None, exc.record.retry_in
        return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)

    def on_success(self, retval, task_id, args, kwargs):
        if isinstance(retval, AttemptRecord):
            self.app.services.deliveries.record(retval)

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        if isinstance(exc, AttemptFailed):
            self.app.services.deliveries.record(exc.record)

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        if isinstance(exc, AttemptFailed):
            self.app.services.deliveries.record(exc.record)
        else:
            # The database or another dependency failed before the send; the job keeps its
            # state in the database and the sweeper sends it again.
            log.error("delivery of job %s interrupted: %s", args[0] if args else "?", type(exc).__name__)


@celery.task(
    bind=True,
    base=DeliveryTask,
    name="pulse.deliver",
    autoretry_for=(RetryableAttemptFailed,),
    max_retries=None,
    acks_late=True,
    reject_on_worker_lost=True,
)
def deliver(self, job_id: int) -> AttemptRecord | None:
    """Claim job `job_id` and make one attempt; None when it was not this message's to send."""
    return self.app.services.deliveries.attempt(job_id)


@celery.task(
    bind=True,
    name="pulse.record_outcome",
    autoretry_for=DATABASE_ERRORS,
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    # About a day of tries; the outbox keeps the outcome for the sweeper beyond that.
    max_retries=1500,
    acks_late=True,
)
def record_outcome(self, record: dict) -> None:
    """Write an attempt's outcome that its results hook could not (the database was down)."""
    self.app.services.deliveries.record_handed_over(AttemptRecord.from_message(record))
