"""The typed values an attempt produces, exchanged by the domain, the Celery task and its hooks.

An attempt either returns an `AttemptRecord` (delivered) or raises `AttemptFailed` carrying
one, with the sender's own error as `__cause__`. `RetryableAttemptFailed` is the one the task's
autoretry names: a transient failure with attempts left. The record says everything the
results hook writes: the log row, the job's new state and when the next attempt is due.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AttemptRecord:
    """What one finished attempt at one job did."""

    job_id: int
    tenant_id: str
    channel_id: int
    channel_type: str | None
    # The job's queue: where a message about this record goes (the results task).
    queue: str
    # The attempt's number: the fencing token of its claim (`notification_jobs.attempts`).
    attempt: int
    # Attempts since the job's last replay: what the dead-letter budget counts.
    budget_attempt: int
    success: bool
    duration_ms: float
    status_code: int | None = None
    # The receiver's answer on success, the error on failure: safe to show and to log.
    detail: str | None = None
    # Seconds until the next attempt, when there is one; None once delivered or dead-lettered.
    retry_in: float | None = None
    # True when the next attempt goes out as a Celery ETA message (a short delay); False
    # when the job waits in the database and the beat sends it when due.
    eta_message: bool = False
    # Whether the failure says nothing about the receiver (a configuration error, a refused
    # destination): such failures neither open nor close the channel's circuit.
    counts_for_circuit: bool = True
    # The job's alert: whose next event on the channel the outcome may release. (A record
    # handed over by an older version may lack it.)
    alert_id: int | None = None

    @property
    def will_retry(self) -> bool:
        return not self.success and self.retry_in is not None

    def as_message(self) -> dict[str, Any]:
        """A JSON-safe form, for handing the record to another task."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> "AttemptRecord":
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


class AttemptFailed(Exception):
    """An attempt that failed: dead-lettered unless it is a `RetryableAttemptFailed`."""

    def __init__(self, record: AttemptRecord):
        super().__init__(record.detail or "delivery attempt failed")
        self.record = record

    def __reduce__(self):
        # Celery's hooks receive the exception only if it survives pickling; by default an
        # exception pickles as its message, and the record would be lost.
        return type(self), (self.record,)


class RetryableAttemptFailed(AttemptFailed):
    """A transient failure with attempts left: the task retries it after `record.retry_in` s."""
