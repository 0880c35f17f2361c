"""Every worker serves its delivery metrics on 127.0.0.1:WORKER_METRICS_PORT/metrics (DESIGN §9)."""

from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import (
    PrivateStack,
    create_channel,
    create_rule,
    deliveries,
    free_port,
    post_alert,
    settled,
    wait_for,
)


@pytest.fixture
def stack(app):
    port = free_port()
    stack = PrivateStack(11, {"WORKER_METRICS_PORT": str(port), "CIRCUIT_FAILURE_THRESHOLD": "1", "CIRCUIT_OPEN_SECONDS": "600"})
    stack.metrics_url = f"http://127.0.0.1:{port}/metrics"
    stack.worker(concurrency=2)
    yield stack
    stack.close()


def samples(url: str) -> dict[tuple[str, tuple], float]:
    response = requests.get(url, timeout=5)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_attempts_durations_and_open_circuits_after_known_deliveries(stack, receiver):
    tenant = stack.tenant()
    receiver.script("/flaky", [(503, {}, b"once")])
    receiver.script("/refusing", [(400, {}, b"no")])
    for path in ("/ok", "/flaky", "/refusing"):
        channel = create_channel(stack.client, tenant, "webhook", {"url": receiver.url(path)}, name=path)
        create_rule(stack.client, tenant, channel["channel_id"], alert_type=path.strip("/"))
    for alert_type, devices in (("ok", 2), ("flaky", 1), ("refusing", 1)):
        for number in range(devices):
            post_alert(stack.client, tenant, alert_type=alert_type, device_id=f"{alert_type}-{number}")
    # The flaky channel's one failure opens its circuit (threshold 1): its retry waits.
    wait_for(lambda: samples(stack.metrics_url).get(("pulse_channel_circuit_open", ())) == 1.0, message="the open circuit")
    wait_for(lambda: sorted(j["status"] for j in deliveries(stack.client, tenant)) == ["DELIVERED", "DELIVERED", "FAILED", "RETRYING"], message="the others to settle")

    values = samples(stack.metrics_url)
    attempts = {labels: value for (name, labels), value in values.items() if name == "pulse_delivery_attempts_total"}
    assert attempts == {
        (("channel_type", "webhook"), ("outcome", "delivered")): 2.0,
        (("channel_type", "webhook"), ("outcome", "retry")): 1.0,
        (("channel_type", "webhook"), ("outcome", "failed")): 1.0,
    }
    assert values[("pulse_delivery_seconds_count", (("channel_type", "webhook"),))] == 4.0
    assert values[("pulse_delivery_seconds_sum", (("channel_type", "webhook"),))] > 0
    assert values[("pulse_channel_circuit_open", ())] == 1.0


def test_a_second_worker_on_a_taken_port_still_delivers(stack, receiver):
    # The port is the first worker's: the second one says so and works without metrics.
    second = stack.worker("second", concurrency=1)
    tenant = stack.tenant()
    channel = create_channel(stack.client, tenant, "webhook", {"url": receiver.url()})
    create_rule(stack.client, tenant, channel["channel_id"])
    post_alert(stack.client, tenant)
    assert wait_for(lambda: settled(stack.client, tenant, 1))[0]["status"] == "DELIVERED"
    assert "worker metrics not served" in second.log()
