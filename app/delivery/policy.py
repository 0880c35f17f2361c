"""The retry policy: how many attempts a job gets, how long between them, how long a claim holds.

One policy for every channel type (Alertmanager's retry stage, healthchecks' transports): the
senders only say whether a failure is transient; the schedule is decided here.
"""

from __future__ import annotations

import random
from datetime import timedelta

from app.config import DeliverySettings

# How late a message may come compared with the job's schedule and still be let in: Celery's
# ETA and the database's clock disagree by milliseconds, not seconds.
SCHEDULE_TOLERANCE = timedelta(seconds=2)


def claim_lease(settings: DeliverySettings) -> timedelta:
    """How long a claimed job stays SENDING before its attempt counts as lost.

    An attempt is bounded by the timeout as a whole; the margin covers the claim, the
    results hook and a busy machine. A lease that passes counts as a failed attempt.
    """
    return timedelta(seconds=settings.timeout_seconds * 2 + 15)


def retry_delay(attempt: int, settings: DeliverySettings, retry_after: float | None = None, rng=random) -> float:
    """Seconds before the attempt after `attempt` (1-based, counted since the last replay).

    With `DELIVERY_RETRY_SCHEDULE` the attempt's delay is read from the schedule (its last
    entry past the end); otherwise the base doubles each attempt (base, 2*base, 4*base, ...)
    up to the cap. Either is jittered to [75%, 100%] of itself, so that retries of many jobs
    spread out but never come much sooner than promised. A receiver's `Retry-After` is a
    floor, capped by the longest delay the policy allows.
    """
    if settings.retry_schedule:
        planned = settings.retry_schedule[min(max(attempt, 1), len(settings.retry_schedule)) - 1]
    else:
        planned = min(settings.backoff_max_seconds, settings.backoff_base_seconds * (2 ** max(0, attempt - 1)))
    delay = planned * (0.75 + 0.25 * rng.random())
    if retry_after is not None:
        delay = max(delay, min(float(retry_after), settings.longest_delay_seconds))
    return delay


def by_eta_message(delay: float, settings: DeliverySettings) -> bool:
    """Whether a retry `delay` seconds ahead goes out as a Celery ETA message (autoretry).

    Only a short one does (`PULSE_ETA_RETRY_MAX_SECONDS`, five minutes): a later retry waits
    in the database (RETRYING, next_attempt_at) and the beat sends it when due, so that no
    worker holds it in memory for hours and neither a worker restart nor a broker flush can
    lose or hasten it.
    """
    return delay <= settings.eta_retry_max_seconds


def attempts_left(budget_attempt: int, settings: DeliverySettings) -> bool:
    """Whether a job whose `budget_attempt`-th attempt (since its last replay) failed may try again."""
    return budget_attempt < settings.attempts_allowed
