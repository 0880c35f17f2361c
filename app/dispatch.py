"""After an alert event commits: send one Celery message per new job, publish the live event.

The database already holds the jobs, so a broker outage here loses nothing: the message is
skipped with a warning and the sweeper sends it once the broker is back.
"""

from __future__ import annotations

import logging
from typing import Iterable, Protocol

log = logging.getLogger(__name__)


class Enqueuer(Protocol):
    """Sends the delivery messages of jobs to their queues."""

    def send_many(self, jobs: list[tuple[int, str]]) -> int:
        """Send `(job_id, queue)` messages in order; stop at the first broker failure."""
        ...


def send_jobs(enqueuer: Enqueuer, jobs: Iterable[tuple[int, str]]) -> int:
    """Send `(job_id, queue)` messages; a broker failure leaves the rest to the sweeper.

    Returns how many were sent; never raises for a broker outage.
    """
    jobs = list(jobs)
    if not jobs:
        return 0
    try:
        return enqueuer.send_many(jobs)
    except Exception as exc:  # the broker is down: the sweeper will send the rest
        log.warning("broker unavailable, %d job(s) wait for the sweeper: %s", len(jobs), type(exc).__name__)
        return 0


class CeleryEnqueuer:
    """Enqueues `pulse.deliver` through a Celery app, failing fast when the broker is down."""

    TASK = "pulse.deliver"

    def __init__(self, celery_app):
        self.celery = celery_app

    def send_many(self, jobs: list[tuple[int, str]]) -> int:
        sent = 0
        # One producer (one broker connection) for the whole batch.
        with self.celery.producer_or_acquire() as producer:
            for job_id, queue in jobs:
                self.celery.send_task(self.TASK, args=[job_id], queue=queue, retry=False, producer=producer)
                sent += 1
        return sent
