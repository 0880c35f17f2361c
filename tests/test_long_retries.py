"""Retry windows of a day: long delays wait in the database, not in a worker or the broker (DESIGN §5a).

`PULSE_ETA_RETRY_MAX_SECONDS` is five minutes in production; here it is a fraction of a
second, so that a retry a few seconds ahead is a "long" one, and the test shows what a retry
twelve hours ahead does: it waits as RETRYING with its `next_attempt_at`, the beat sends it
when due, and a worker restart or a broker flush meanwhile neither loses nor hastens it.
"""

from __future__ import annotations

import time

import pytest

from app.delivery.policy import by_eta_message, retry_delay
from tests.delivery_support import settings
from tests.support import PrivateStack, create_channel, create_rule, deliveries, post_alert, settled, wait_for

DELAY = 4.0


@pytest.fixture
def stack(app):
    stack = PrivateStack(
        7,
        {"DELIVERY_RETRY_SCHEDULE": f"{DELAY:g}s", "PULSE_ETA_RETRY_MAX_SECONDS": "0.5", "CIRCUIT_FAILURE_THRESHOLD": "1000"},
    )
    yield stack
    stack.close()


def test_a_long_retry_survives_a_worker_restart_and_a_broker_flush(stack, receiver):
    worker = stack.worker()
    stack.beat()
    tenant = stack.tenant()
    receiver.script("/hook", [(503, {}, b"back in a while")])
    channel = create_channel(stack.client, tenant, "webhook", {"url": receiver.url()})
    create_rule(stack.client, tenant, channel["channel_id"])
    post_alert(stack.client, tenant)

    wait_for(lambda: deliveries(stack.client, tenant)[0]["status"] == "RETRYING", message="the first attempt to fail")
    [job] = deliveries(stack.client, tenant)
    assert job["attempts"] == 1 and job["next_attempt_at"]
    failed_at = receiver.at()[0].at

    # The worker goes away and the broker loses everything it held.
    worker.stop()
    stack.flush_broker()
    stack.worker("after-restart")

    [job] = wait_for(lambda: settled(stack.client, tenant, 1), timeout=DELAY + 15, message="the retry")
    assert job["status"] == "DELIVERED" and job["attempts"] == 2
    first, second = receiver.at()
    # Not hastened (a delay of DELAY jittered down to 75 % at most), and not lost.
    assert second.at - failed_at >= DELAY * 0.75 - 0.2


def test_the_schedule_sets_each_delay_and_the_number_of_attempts(stack, receiver):
    stack.worker()
    stack.beat()
    tenant = stack.tenant()
    receiver.default = (503, {}, b"down for good")
    channel = create_channel(stack.client, tenant, "webhook", {"url": receiver.url()})
    create_rule(stack.client, tenant, channel["channel_id"])
    started = time.time()
    post_alert(stack.client, tenant)
    [job] = wait_for(lambda: settled(stack.client, tenant, 1), timeout=DELAY + 15, message="the job to be dead-lettered")
    # One delay listed: two attempts, whatever DELIVERY_MAX_ATTEMPTS says.
    assert job["status"] == "FAILED" and job["attempts"] == 2
    assert "attempt 2 of 2" in job["last_error"]
    assert receiver.at()[1].at - started >= DELAY * 0.75 - 0.2


SEEDS = settings(retry_schedule=(300.0, 1800.0, 7200.0, 43200.0, 86400.0))


@pytest.mark.parametrize("attempt, planned", [(1, 300.0), (2, 1800.0), (3, 7200.0), (4, 43200.0), (5, 86400.0), (9, 86400.0)])
def test_the_seeds_schedule_jittered_down_by_at_most_a_quarter(attempt, planned):
    assert retry_delay(attempt, SEEDS, rng=_Fixed(0.0)) == planned * 0.75
    assert retry_delay(attempt, SEEDS, rng=_Fixed(1.0)) == planned
    assert SEEDS.attempts_allowed == 6


def test_only_short_retries_are_eta_messages():
    production = settings(eta_retry_max_seconds=300.0)
    assert by_eta_message(240.0, production) and not by_eta_message(1800.0, production)


class _Fixed:
    """A random source that always draws the same number."""

    def __init__(self, value: float):
        self.value = value

    def random(self) -> float:
        return self.value
