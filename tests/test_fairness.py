"""Fair sharing between tenants (DESIGN §5a): one tenant's backlog waits in the database, not in the broker.

At most PULSE_TENANT_QUEUE_DEPTH messages of one tenant wait in one queue; another tenant's
message therefore joins the queue behind at most that many of the noisy tenant's, however
large its backlog. The mechanism is shown on the broker itself (no worker runs while the
backlog builds), then a worker drains everything in each tenant's order.
"""

from __future__ import annotations

import base64
import json

import pytest
import redis as redis_client

from tests.support import PrivateStack, create_channel, create_rule, deliveries, post_alert, settled, wait_for

DEPTH = 5


@pytest.fixture
def stack(app):
    stack = PrivateStack(10, {"PULSE_TENANT_QUEUE_DEPTH": str(DEPTH)})
    yield stack
    stack.close()


def queued_jobs(stack, queue: str) -> list[int]:
    """The job ids of the messages waiting in `queue`, first to be consumed first."""
    client = redis_client.Redis.from_url(stack.broker_url)
    messages = client.lrange(queue, 0, -1)
    client.close()
    # kombu pushes on the left and pops on the right; a message's body is base64 JSON
    # [args, kwargs, embed], and the args of pulse.deliver are [job_id].
    return [json.loads(base64.b64decode(json.loads(raw)["body"]))[0][0] for raw in reversed(messages)]


def test_a_noisy_tenant_waits_in_the_database_and_another_goes_ahead(stack, receiver):
    noisy, quiet = stack.tenant(), stack.tenant()
    for tenant in (noisy, quiet):
        channel = create_channel(stack.client, tenant, "webhook", {"url": receiver.url(f"/{tenant.tenant_id}")})
        create_rule(stack.client, tenant, channel["channel_id"])
    for number in range(40):
        post_alert(stack.client, noisy, device_id=f"pump-{number}", severity=2)
    assert len(queued_jobs(stack, "pulse.default")) == DEPTH, "the rest of the backlog waits in the database"

    post_alert(stack.client, quiet, device_id="boiler", severity=2)
    [quiet_job] = deliveries(stack.client, quiet)
    queue = queued_jobs(stack, "pulse.default")
    assert queue.index(quiet_job["job_id"]) == DEPTH, "behind the noisy tenant's share, not its backlog"

    stack.worker(concurrency=2)
    jobs = wait_for(lambda: settled(stack.client, noisy, 40), timeout=60, message="the backlog to drain")
    assert {job["status"] for job in jobs} == {"DELIVERED"}
    order = [int(r.json()["device_id"].split("-")[1]) for r in sorted(receiver.at(f"/{noisy.tenant_id}"), key=lambda r: r.at)]
    assert sorted(order) == list(range(40))
    assert wait_for(lambda: settled(stack.client, quiet, 1))[0]["status"] == "DELIVERED"
