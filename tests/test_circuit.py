"""The circuit breaker per channel (DESIGN §5a): open, probe, double, close, and report it as `health`."""

from __future__ import annotations

import time

import pytest

from tests.support import PrivateStack, create_channel, create_rule, deliveries, post_alert, settled, wait_for

THRESHOLD = 3
OPEN_SECONDS = 2.0


@pytest.fixture
def stack(app):
    stack = PrivateStack(
        4,
        {
            "CIRCUIT_FAILURE_THRESHOLD": str(THRESHOLD),
            "CIRCUIT_OPEN_SECONDS": str(OPEN_SECONDS),
            # Enough attempts that no job is dead-lettered while the circuit holds it back.
            "DELIVERY_MAX_ATTEMPTS": "10",
        },
    )
    stack.worker(concurrency=1)
    stack.beat()
    yield stack
    stack.close()


def health(stack, tenant, channel_id):
    response = stack.client.get(f"/api/v2/channels/{channel_id}", headers=tenant.admin)
    assert response.status_code == 200
    return response.get_json()["health"]


def test_a_failing_receiver_opens_the_circuit_probes_with_one_attempt_and_recovers(stack, receiver):
    tenant = stack.tenant()
    receiver.default = (503, {}, b"down")
    channel = create_channel(stack.client, tenant, "webhook", {"url": receiver.url()})
    assert channel["health"] == {
        "state": "closed",
        "consecutive_failures": 0,
        "open_until": None,
        "last_error": None,
        "last_success_at": None,
        "last_failure_at": None,
    }
    create_rule(stack.client, tenant, channel["channel_id"])
    for number in range(5):
        post_alert(stack.client, tenant, device_id=f"pump-{number}")

    opened = wait_for(lambda: (h := health(stack, tenant, channel["channel_id"]))["state"] == "open" and h, message="the circuit to open")
    assert opened["consecutive_failures"] == THRESHOLD
    assert "503" in opened["last_error"] and opened["open_until"] and opened["last_failure_at"]
    assert len(receiver.at()) == THRESHOLD, "one worker thread: nothing else was in flight"

    # While open, nothing is sent; then exactly one probe, which fails and doubles the wait.
    time.sleep(OPEN_SECONDS * 0.8)
    assert len(receiver.at()) == THRESHOLD
    wait_for(lambda: len(receiver.at()) == THRESHOLD + 1, timeout=10, message="the probe")
    probe_at = receiver.at()[-1].at
    reopened = wait_for(lambda: (h := health(stack, tenant, channel["channel_id"]))["state"] == "open" and h, message="the circuit to open again")
    assert reopened["consecutive_failures"] == THRESHOLD + 1
    time.sleep(OPEN_SECONDS * 1.5)
    assert len(receiver.at()) == THRESHOLD + 1, "the second open period is twice as long"

    receiver.default = (200, {}, b"ok")
    wait_for(lambda: len(receiver.at()) >= THRESHOLD + 2, timeout=15, message="the second probe")
    assert receiver.at()[THRESHOLD + 1].at - probe_at >= 2 * OPEN_SECONDS * 0.9
    jobs = wait_for(lambda: settled(stack.client, tenant, 5), timeout=30, message="the held jobs to go out")
    assert {job["status"] for job in jobs} == {"DELIVERED"}
    closed = health(stack, tenant, channel["channel_id"])
    assert closed["state"] == "closed" and closed["consecutive_failures"] == 0 and closed["last_success_at"]
    # Jobs held back by the open circuit spent no attempt on it.
    attempts = sorted(job["attempts"] for job in deliveries(stack.client, tenant))
    assert sum(attempts) == len(receiver.at())
    assert attempts[-1] <= 4


def test_a_successful_test_send_closes_an_open_circuit(stack, receiver):
    tenant = stack.tenant()
    receiver.default = (500, {}, b"broken")
    channel = create_channel(stack.client, tenant, "webhook", {"url": receiver.url()})
    create_rule(stack.client, tenant, channel["channel_id"])
    for number in range(THRESHOLD + 1):
        post_alert(stack.client, tenant, device_id=f"valve-{number}")
    wait_for(lambda: health(stack, tenant, channel["channel_id"])["state"] == "open", message="the circuit to open")

    receiver.default = (200, {}, b"ok")
    tested = stack.client.post(f"/api/v2/channels/{channel['channel_id']}/test", headers=tenant.admin)
    assert tested.status_code == 200
    assert health(stack, tenant, channel["channel_id"])["state"] == "closed"
    jobs = wait_for(lambda: settled(stack.client, tenant, THRESHOLD + 1), timeout=OPEN_SECONDS * 0.9, message="the held jobs")
    assert {job["status"] for job in jobs} == {"DELIVERED"}


def test_refusals_of_the_receiver_do_not_open_the_circuit(stack, receiver):
    tenant = stack.tenant()
    receiver.default = (422, {}, b"not this one")
    channel = create_channel(stack.client, tenant, "webhook", {"url": receiver.url()})
    create_rule(stack.client, tenant, channel["channel_id"])
    for number in range(THRESHOLD + 2):
        post_alert(stack.client, tenant, device_id=f"meter-{number}")
    jobs = wait_for(lambda: settled(stack.client, tenant, THRESHOLD + 2), message="every job to be refused")
    assert {job["status"] for job in jobs} == {"FAILED"}
    state = health(stack, tenant, channel["channel_id"])
    assert state["state"] == "closed" and state["consecutive_failures"] == 0 and "422" in state["last_error"]


def test_another_tenant_cannot_read_a_channels_health(stack, receiver):
    tenant, other = stack.tenant(), stack.tenant()
    channel = create_channel(stack.client, tenant, "webhook", {"url": receiver.url()})
    assert stack.client.get(f"/api/v2/channels/{channel['channel_id']}", headers=other.admin).status_code == 404
    listed = stack.client.get("/api/v2/channels", headers=tenant.viewer).get_json()["items"]
    assert [item["health"]["state"] for item in listed] == ["closed"]
