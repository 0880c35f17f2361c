"""The task messages Pulse publishes are the ones Celery's `send_task` would publish.

`CeleryEnqueuer` builds them with Celery's own protocol (`amqp.as_task_v2`) and publishes them
with kombu, skipping `send_task`'s per-message work (app/dispatch.py). Here both kinds go to
a queue of the test's own on the real broker, and are read back raw.
"""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import redis as redis_client

from app.dispatch import DELIVER_TASK, PROBE_TASK


@pytest.fixture
def celery(app):
    return app.extensions["pulse"].celery


@pytest.fixture
def queue(celery):
    name = f"pulse.test-{uuid.uuid4().hex[:8]}"
    client = redis_client.Redis.from_url(celery.conf.broker_write_url)
    yield name
    client.delete(name)
    client.close()


def raw_messages(celery, queue: str) -> list[dict]:
    """The messages waiting in `queue`, oldest first, as kombu stored them."""
    client = redis_client.Redis.from_url(celery.conf.broker_write_url)
    try:
        return [json.loads(raw) for raw in reversed(client.lrange(queue, 0, -1))]
    finally:
        client.close()


def without_ids(message: dict) -> dict:
    """The message with what differs between any two messages (ids, the sender) taken out."""
    headers = dict(message["headers"])
    task_id = headers.pop("id")
    assert headers.pop("root_id") == task_id
    headers.pop("origin")
    properties = dict(message["properties"])
    assert properties.pop("correlation_id") == task_id
    properties.pop("delivery_tag")
    # send_task names the sending thread as the address of a reply; Pulse keeps no results.
    properties.pop("reply_to")
    return {**message, "headers": headers, "properties": properties}


def test_a_delivery_message_is_the_one_send_task_makes(app, celery, queue):
    enqueuer = app.extensions["pulse"].enqueuer
    assert enqueuer.send_many([(41, queue), (42, queue)]) == 2
    celery.send_task(DELIVER_TASK, args=[42], queue=queue, retry=False)
    first, ours, theirs = raw_messages(celery, queue)

    assert without_ids(ours) == without_ids(theirs)
    assert json.loads(base64.b64decode(first["body"]))[0] == [41]
    assert json.loads(base64.b64decode(ours["body"])) == [[42], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    assert ours["headers"]["task"] == DELIVER_TASK
    assert ours["headers"]["argsrepr"] == "[42]"
    assert ours["properties"]["delivery_info"] == {"exchange": "", "routing_key": queue}
    assert len({message["headers"]["id"] for message in (first, ours, theirs)}) == 3


def test_a_probe_message_is_the_one_send_task_makes(app, celery, queue):
    app.extensions["pulse"].enqueuer.send_probes([queue], 1234.5)
    celery.send_task(PROBE_TASK, args=[queue, 1234.5], queue=queue, retry=False)
    ours, theirs = raw_messages(celery, queue)

    assert without_ids(ours) == without_ids(theirs)
    assert json.loads(base64.b64decode(ours["body"]))[0] == [queue, 1234.5]
