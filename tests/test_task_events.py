"""Task events, for Flower: every delivery's events reach a monitor, a moment's worth per message."""

from __future__ import annotations

import base64
import json
import threading

import pytest
import redis

from tests.support import PrivateStack, WorkerProcess, create_channel, create_rule, post_alert, settled, wait_for


@pytest.fixture
def stack(app):
    stack = PrivateStack(12)
    yield stack
    stack.close()


class TaskEventsWorker(WorkerProcess):
    """The Procfile's worker with task events on from its start, as while Flower watches."""

    def args(self) -> list[str]:
        return [*super().args(), "--task-events"]


class EventMessages:
    """The worker's event messages as a monitor subscribed to the broker receives them."""

    def __init__(self, broker_url: str):
        self.client = redis.Redis.from_url(broker_url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe("*celeryev*")
        self.messages: list[list[dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message is None:
                continue
            envelope = json.loads(message["data"])
            body = json.loads(base64.b64decode(envelope["body"]) if envelope["properties"].get("body_encoding") == "base64" else envelope["body"])
            # A batch of events is a list; a lone event (heartbeats, a batch of one) a dict.
            self.messages.append(body if isinstance(body, list) else [body])

    def task_events(self) -> list[dict]:
        return [event for batch in list(self.messages) for event in batch if event["type"].startswith("task-")]

    def task_messages(self) -> list[list[dict]]:
        return [batch for batch in list(self.messages) if any(event["type"].startswith("task-") for event in batch)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.pubsub.close()
        self.client.close()


def test_each_delivery_is_seen_received_started_and_succeeded_in_batched_messages(stack, receiver):
    tenant = stack.tenant()
    channel = create_channel(stack.client, tenant, "webhook", {"url": receiver.url("/hook")})
    create_rule(stack.client, tenant, channel["channel_id"])
    alerts = 12
    # The deliveries wait in the broker, then go out together once the worker starts: their
    # events come in a burst, whatever the speed of the machine.
    for number in range(alerts):
        post_alert(stack.client, tenant, device_id=f"pump-{number}")
    monitor = EventMessages(stack.broker_url)
    try:
        worker = TaskEventsWorker("events", stack.env, concurrency=4)
        stack.processes.append(worker)
        worker.start()
        wait_for(lambda: settled(stack.client, tenant, alerts), message="the deliveries to settle")

        def seen():
            events = monitor.task_events()
            done = {event["uuid"] for event in events if event["type"] == "task-succeeded"}
            return events if len(done) == alerts else None

        events = wait_for(seen, message="every delivery's task-succeeded event")
    finally:
        monitor.close()

    by_task: dict[str, list[str]] = {}
    for event in events:
        by_task.setdefault(event["uuid"], []).append(event["type"])
    assert len(by_task) == alerts
    assert all(types == ["task-received", "task-started", "task-succeeded"] for types in by_task.values()), by_task
    assert {event["name"] for event in events if event["type"] == "task-received"} == {"pulse.deliver"}
    # Three events per delivery, gathered for a moment: far fewer messages than events
    # (a message per event, or nearly, without the batching).
    messages = monitor.task_messages()
    assert len(messages) * 3 <= len(events), [len(batch) for batch in messages]
