"""The retry policy as a table: delays, jitter, `Retry-After`, caps and attempt budgets.

`retry_delay` takes its random source as a parameter, so every row is exact: `rng` at 0 is the
largest jitter (a quarter off), at 1 none. The worker tests (test_retry.py) check that the
worker applies this policy; the numbers are checked here, without timing anything.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.config import DeliverySettings
from app.delivery.policy import attempts_left, by_eta_message, claim_lease, retry_delay


class Fixed:
    """A random source that always draws `value`."""

    def __init__(self, value: float):
        self.value = value

    def random(self) -> float:
        return self.value


DOUBLING = DeliverySettings(max_attempts=5, backoff_base_seconds=30, backoff_max_seconds=100)


@pytest.mark.parametrize(
    "attempt, largest_jitter, no_jitter",
    [
        (1, 22.5, 30.0),  # the base
        (2, 45.0, 60.0),  # doubled
        (3, 75.0, 100.0),  # 120 s capped at DELIVERY_BACKOFF_MAX_SECONDS
        (8, 75.0, 100.0),  # and stays there
    ],
)
def test_the_base_doubles_up_to_the_cap_jittered_down_by_at_most_a_quarter(attempt, largest_jitter, no_jitter):
    assert retry_delay(attempt, DOUBLING, rng=Fixed(0.0)) == largest_jitter
    assert retry_delay(attempt, DOUBLING, rng=Fixed(1.0)) == no_jitter
    assert largest_jitter < retry_delay(attempt, DOUBLING, rng=Fixed(0.5)) < no_jitter


@pytest.mark.parametrize(
    "retry_after, expected",
    [
        (None, 22.5),
        (3, 22.5),  # sooner than the backoff: the backoff stands
        (50, 50.0),  # later: the receiver's word is a floor
        (10_000, 100.0),  # but never past the longest delay the policy allows
    ],
)
def test_retry_after_is_a_floor_capped_by_the_policy(retry_after, expected):
    assert retry_delay(1, DOUBLING, retry_after=retry_after, rng=Fixed(0.0)) == expected


def test_the_budget_counts_attempts_since_the_last_replay():
    assert [attempts_left(n, DOUBLING) for n in range(1, 6)] == [True, True, True, True, False]
    schedule = DeliverySettings(max_attempts=99, retry_schedule=(60.0, 120.0))
    # A schedule of two delays is three attempts, whatever DELIVERY_MAX_ATTEMPTS says.
    assert [attempts_left(n, schedule) for n in (1, 2, 3)] == [True, True, False]


def test_a_retry_is_an_eta_message_only_when_it_is_short():
    settings = DeliverySettings(eta_retry_max_seconds=300)
    assert by_eta_message(299.9, settings) and by_eta_message(300, settings)
    assert not by_eta_message(300.1, settings)


def test_a_claim_outlives_a_whole_attempt_with_margin():
    assert claim_lease(DeliverySettings(timeout_seconds=10)) == timedelta(seconds=35)
    assert claim_lease(DeliverySettings(timeout_seconds=2)) == timedelta(seconds=19)
