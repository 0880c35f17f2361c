"""The states of alerts and notification jobs, and the events that move them (DESIGN §4).

Declared once; every module names them from here. They are `StrEnum`s, so they compare equal
to, serialise as and are stored as their plain names.
"""

from __future__ import annotations

from enum import StrEnum


class AlertStatus(StrEnum):
    """Where an alert is in its lifecycle."""

    OPEN = "OPEN"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    CLOSED = "CLOSED"


# An active alert has not been closed: it holds its fingerprint and is on the live list.
ACTIVE_ALERT_STATUSES = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)


class Event(StrEnum):
    """What happened to an alert, and so what a notification is about."""

    OPEN = "OPEN"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    CLOSED = "CLOSED"
    ESCALATED = "ESCALATED"
    # A test send from POST /channels/{id}/test: no alert, no job.
    TEST = "TEST"


# The events a routing rule's `deliver_on` may name, in lifecycle order.
LIFECYCLE_EVENTS = (Event.OPEN, Event.ACKNOWLEDGED, Event.CLOSED)


class JobStatus(StrEnum):
    """Where one notification job (one alert event on one channel) stands."""

    PENDING = "PENDING"
    SENDING = "SENDING"
    RETRYING = "RETRYING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    THROTTLED = "THROTTLED"
    SUPPRESSED = "SUPPRESSED"


# Still to be sent: waiting for an attempt, or in one.
UNSETTLED_JOB_STATUSES = (JobStatus.PENDING, JobStatus.SENDING, JobStatus.RETRYING)
# Waiting for an attempt (not in one).
WAITING_JOB_STATUSES = (JobStatus.PENDING, JobStatus.RETRYING)
# Settled: sent, or given up on (the dead-letter queue).
SETTLED_JOB_STATUSES = (JobStatus.DELIVERED, JobStatus.FAILED)
# Recorded, never to be sent, each with the reason in `last_error`.
UNSENT_JOB_STATUSES = (JobStatus.THROTTLED, JobStatus.SUPPRESSED)
