"""Bulkheads: one slow receiver holds at most DELIVERY_CONCURRENCY_PER_CHANNEL attempts (DESIGN §5a).

Two workers share the queues; the cap holds across both, the other channel's deliveries go
on meanwhile, and the jobs that found their channel full spent no attempt waiting.
"""

from __future__ import annotations

import time

import pytest

from tests.support import PrivateStack, Receiver, create_channel, create_rule, deliveries, post_alert, settled, wait_for

SLOW_SECONDS = 1.0
PER_CHANNEL = 2


@pytest.fixture
def slow_receiver():
    server = Receiver(delay=SLOW_SECONDS)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stack(app):
    stack = PrivateStack(3, {"DELIVERY_CONCURRENCY_PER_CHANNEL": str(PER_CHANNEL)})
    stack.worker("first", concurrency=4)
    stack.worker("second", concurrency=4)
    yield stack
    stack.close()


def test_a_slow_channel_holds_at_most_its_share_and_delays_nobody(stack, slow_receiver, receiver):
    tenant = stack.tenant()
    slow = create_channel(stack.client, tenant, "webhook", {"url": slow_receiver.url()}, name="slow")
    fast = create_channel(stack.client, tenant, "webhook", {"url": receiver.url()}, name="fast")
    create_rule(stack.client, tenant, slow["channel_id"], alert_type="slow")
    create_rule(stack.client, tenant, fast["channel_id"], alert_type="fast")

    for number in range(8):
        post_alert(stack.client, tenant, device_id=f"slow-{number}", alert_type="slow")
    started = time.monotonic()
    for number in range(8):
        post_alert(stack.client, tenant, device_id=f"fast-{number}", alert_type="fast")

    wait_for(lambda: len(receiver.at()) == 8, timeout=10, message="the fast channel's deliveries")
    fast_done = time.monotonic() - started
    # Eight slow deliveries two at a time take four rounds of a second; the fast channel does
    # not wait for them (the workers have eight threads between them, the slow one holds two).
    assert fast_done < 2 * SLOW_SECONDS, f"the fast channel waited {fast_done:.1f} s behind the slow one"

    # No beat runs here: the held jobs go out only because each freed slot feeds the next.
    jobs = wait_for(lambda: settled(stack.client, tenant, 16), timeout=60, message="every delivery")
    assert {job["status"] for job in jobs} == {"DELIVERED"}
    assert slow_receiver.max_in_flight == PER_CHANNEL, "the cap holds across both workers"
    assert len(slow_receiver.at()) == 8, "held jobs are sent once, not once per time they found the channel full"
    slow_jobs = deliveries(stack.client, tenant, channel_id=slow["channel_id"])
    assert {job["attempts"] for job in slow_jobs} == {1}, "waiting for a slot spends no attempt"

