"""Outcomes waiting for the database: an attempt's result must outlive a database outage.

When the results hook cannot reach the database, the record is kept here (Redis, the
worker's other dependency) and handed to a task that writes it once the database is back.
The sweeper looks here before it treats an attempt whose lease expired as lost, so an attempt
that did deliver is never sent again because its outcome came late.
"""

from __future__ import annotations

import json
import logging

import redis

from app.delivery.records import AttemptRecord

log = logging.getLogger(__name__)

# Longer than any outage worth waiting out; the job is dead-lettered by age before this.
KEEP_SECONDS = 7 * 86400


def _key(job_id: int, attempt: int) -> str:
    return f"pulse:outcome:{job_id}:{attempt}"


class OutcomeOutbox:
    """Attempt records not yet written to the database."""

    def __init__(self, client: redis.Redis):
        self._redis = client

    def put(self, record: AttemptRecord) -> bool:
        """Keep `record` until it is written; False if Redis cannot keep it either."""
        try:
            self._redis.set(_key(record.job_id, record.attempt), json.dumps(record.as_message()), ex=KEEP_SECONDS)
        except redis.RedisError as exc:
            log.error(
                "outcome of attempt %s of job %s lost with the database and Redis down: %s",
                record.attempt, record.job_id, type(exc).__name__,
                extra={"job_id": record.job_id, "tenant_id": record.tenant_id},
            )
            return False
        return True

    def get(self, job_id: int, attempt: int) -> AttemptRecord | None:
        """The record kept for this attempt, if any (None as well when Redis is down)."""
        try:
            raw = self._redis.get(_key(job_id, attempt))
        except redis.RedisError:
            return None
        return AttemptRecord.from_message(json.loads(raw)) if raw else None

    def discard(self, job_id: int, attempt: int) -> None:
        """The record was written."""
        try:
            self._redis.delete(_key(job_id, attempt))
        except redis.RedisError:
            pass  # it expires on its own, and writing it twice changes nothing
