"""Expiry: a job undelivered DELIVERY_MAX_AGE_SECONDS after its creation is dead-lettered (DESIGN §5a)."""

from __future__ import annotations

import pytest

from tests.support import PrivateStack, create_channel, create_rule, deliveries, post_alert, settled, wait_for

MAX_AGE = 4.0


@pytest.fixture
def stack(app):
    stack = PrivateStack(
        5,
        {
            "DELIVERY_MAX_AGE_SECONDS": str(MAX_AGE),
            # Attempts would last far longer than the age: age is what ends the job.
            "DELIVERY_MAX_ATTEMPTS": "50",
            "CIRCUIT_FAILURE_THRESHOLD": "1000",
        },
    )
    stack.worker()
    stack.beat()
    yield stack
    stack.close()


def test_a_job_still_failing_at_its_max_age_is_dead_lettered_as_expired(stack, receiver):
    tenant = stack.tenant()
    receiver.default = (503, {}, b"still down")
    channel = create_channel(stack.client, tenant, "webhook", {"url": receiver.url()})
    create_rule(stack.client, tenant, channel["channel_id"])
    post_alert(stack.client, tenant)
    [job] = wait_for(lambda: settled(stack.client, tenant, 1), timeout=MAX_AGE + 10, message="the job to expire")
    assert job["status"] == "FAILED"
    assert job["last_error"].startswith("expired: not delivered within 4 s of its creation")
    assert 1 <= job["attempts"] < 50
    # It stays in the dead-letter queue, and a replay gives it a fresh age.
    receiver.default = (200, {}, b"ok")
    assert stack.client.post(f"/api/v2/deliveries/{job['job_id']}/replay", headers=tenant.admin).status_code == 202
    wait_for(lambda: deliveries(stack.client, tenant)[0]["status"] == "DELIVERED", message="the replay to deliver")


def test_a_job_waiting_behind_an_open_circuit_expires_too(app, receiver):
    stack = PrivateStack(
        5,
        {
            "DELIVERY_MAX_AGE_SECONDS": str(MAX_AGE),
            "DELIVERY_MAX_ATTEMPTS": "50",
            "CIRCUIT_FAILURE_THRESHOLD": "1",
            # Open far longer than the jobs may live.
            "CIRCUIT_OPEN_SECONDS": "600",
        },
    )
    try:
        stack.worker(concurrency=1)
        stack.beat()
        tenant = stack.tenant()
        receiver.default = (503, {}, b"down")
        channel = create_channel(stack.client, tenant, "webhook", {"url": receiver.url()})
        create_rule(stack.client, tenant, channel["channel_id"])
        for number in range(3):
            post_alert(stack.client, tenant, device_id=f"tank-{number}")
        jobs = wait_for(lambda: settled(stack.client, tenant, 3), timeout=MAX_AGE + 10, message="the held jobs to expire")
        assert {job["status"] for job in jobs} == {"FAILED"}
        assert all(job["last_error"].startswith("expired") for job in jobs)
        assert len(receiver.at()) == 1, "the circuit opened at the first failure; nothing else was sent"
    finally:
        stack.close()
