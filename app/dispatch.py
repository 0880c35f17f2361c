"""After an alert event commits: send one Celery message per new job, publish the live event.

The database already holds the jobs, so a broker outage here loses nothing: the message is
skipped with a warning and the sweeper sends it once the broker is back.
"""

from __future__ import annotations

import logging
from typing import Iterable, Protocol

log = logging.getLogger(__name__)


class Enqueuer(Protocol):
    """Sends the delivery message of one job to a queue."""

    def send(self, job_id: int, queue: str) -> None: ...


def send_jobs(enqueuer: Enqueuer, jobs: Iterable[tuple[int, str]]) -> int:
    """Send `(job_id, queue)` messages; stop at the first broker failure. Returns how many went."""
    sent = 0
    for job_id, queue in jobs:
        try:
            enqueuer.send(job_id, queue)
        except Exception as exc:  # the broker is down: the sweeper will send the rest
            log.warning("broker unavailable, job %s and later ones wait for the sweeper: %s", job_id, type(exc).__name__)
            break
        sent += 1
    return sent


class CeleryEnqueuer:
    """Enqueues `pulse.deliver` through a Celery app, failing fast when the broker is down."""

    TASK = "pulse.deliver"

    def __init__(self, celery_app):
        self.celery = celery_app

    def send(self, job_id: int, queue: str) -> None:
        self.celery.send_task(self.TASK, args=[job_id], queue=queue, retry=False)
