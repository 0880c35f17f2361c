"""Sending the broker messages of jobs once the transaction that chose them has committed.

The database already holds the jobs, so a broker outage here loses nothing: a message that
cannot be sent is logged, its job is marked as waiting without a message, and it is fed again
(by the next top-up of its tenant, or by the sweeper) once the broker is back.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Iterable, Protocol

from celery.utils.nodenames import anon_nodename
from kombu.utils.uuid import uuid

from app.delivery.jobs import unmark

if TYPE_CHECKING:
    from app.db import Database
    from app.delivery.records import AttemptRecord

log = logging.getLogger(__name__)

DELIVER_TASK = "pulse.deliver"
RECORD_TASK = "pulse.record_outcome"
PROBE_TASK = "pulse.queue_probe"
# AMQP's persistent delivery mode, the one Celery gives its messages (Redis keeps every message alike).
PERSISTENT = 2


class Enqueuer(Protocol):
    """Sends the delivery messages of jobs to their queues."""

    def send_many(self, jobs: list[tuple[int, str]]) -> int:
        """Send `(job_id, queue)` messages in order; return how many surely went (the first ones)."""
        ...


def send_jobs(enqueuer: Enqueuer, jobs: Iterable[tuple[int, str]]) -> int:
    """Send `(job_id, queue)` messages; how many were sent. Never raises for a broker outage."""
    jobs = list(jobs)
    if not jobs:
        return 0
    return enqueuer.send_many(jobs)


class CeleryEnqueuer:
    """Enqueues `pulse.deliver` through a Celery app, failing fast when the broker is down."""

    def __init__(self, celery_app):
        self.celery = celery_app

    def send_many(self, jobs: list[tuple[int, str]]) -> int:
        try:
            # One producer (one broker connection) and, on Redis, one pipelined round trip for
            # the whole batch (kombu's publish batch). It goes whole or not at all, as far as
            # the count says: jobs counted unsent wait again, and a message that went anyway
            # carries the same job id, which a claim makes harmless.
            with self.celery.producer_or_acquire() as producer, producer.batch():
                origin = anon_nodename()
                for job_id, queue in jobs:
                    self._send_task(producer, DELIVER_TASK, [job_id], queue, origin)
        except Exception as exc:  # the broker is down: the jobs wait in the database
            log.warning("broker unavailable, %d job(s) wait to be sent again: %s", len(jobs), type(exc).__name__)
            return 0
        return len(jobs)

    def _send_task(self, producer, name: str, args: list, queue: str, origin: str) -> None:
        """Publish one task message, as `send_task` would make it, without `send_task`'s work.

        Celery builds the message (task protocol 2, `amqp.as_task_v2`) and kombu publishes it,
        as `send_task` has them do; what `send_task` adds per message is the same for every
        message Pulse sends, or known here: the task's options looked up in the registry and
        routed, the repr of the arguments (a generic safe repr), the sender's node name, a
        declaration of the queue (on Redis it only binds the queue object again: the message
        goes to the queue by its name, and the worker declares the queues it consumes), the
        publish signals (Pulse connects none) and a result object (Pulse keeps no results).
        Skipping them cut the CPU of a publish by a third, and the web publishes every new job's
        message (bench/compare.py, profiled). tests/test_task_messages.py compares the message
        with `send_task`'s.
        """
        task_id = uuid()
        headers, properties, body, _ = self.celery.amqp.as_task_v2(
            task_id, name, args, argsrepr=repr(args), kwargsrepr="{}", origin=origin, ignore_result=None
        )
        producer.publish(
            body, exchange="", routing_key=queue, serializer="json", headers=headers, declare=[],
            retry=False, delivery_mode=PERSISTENT, **properties,
        )

    def send_record(self, record: AttemptRecord) -> bool:
        """Hand an attempt's outcome to the results task (the database was unreachable)."""
        try:
            self.celery.send_task(RECORD_TASK, args=[record.as_message()], queue=record.queue, retry=False)
        except Exception as exc:
            log.warning("broker unavailable for the results task: %s", type(exc).__name__, extra={"job_id": record.job_id})
            return False
        return True


    def send_probes(self, queues, sent_at: float) -> None:
        """One probe message down each queue (see app.delivery.sweep)."""
        try:
            with self.celery.producer_or_acquire() as producer, producer.batch():
                origin = anon_nodename()
                for queue in queues:
                    self._send_task(producer, PROBE_TASK, [queue, sent_at], queue, origin)
        except Exception as exc:
            log.warning("broker unavailable for the queue probes: %s", type(exc).__name__)


class Dispatcher:
    """Sends jobs' messages; those the broker did not take go back to waiting in the database."""

    def __init__(self, db: Database, enqueuer: CeleryEnqueuer):
        self.db = db
        self.enqueuer = enqueuer

    def send(self, jobs: Iterable[tuple[int, str]]) -> int:
        jobs = list(jobs)
        sent = send_jobs(self.enqueuer, jobs)
        if sent < len(jobs):
            try:
                with self.db.system_scope("dispatch") as session:
                    unmark(session, [job_id for job_id, _ in jobs[sent:]])
            except Exception as exc:  # the sweeper finds them by the queue's watermark instead
                log.warning("could not mark %d unsent job(s): %s", len(jobs) - sent, type(exc).__name__)
        return sent

    def send_record(self, record: AttemptRecord) -> bool:
        return self.enqueuer.send_record(record)
