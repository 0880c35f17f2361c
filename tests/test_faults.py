"""Crashes and outages lose nothing: every job ends DELIVERED or FAILED, none goes missing.

These tests run their own worker and beat processes on a broker database of their own, so
they can kill, flush and stop them without disturbing the rest of the suite.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest
import redis as redis_client

from app import create_app
from app.config import Settings
from tests.support import (
    BeatProcess,
    WorkerProcess,
    create_channel,
    create_rule,
    make_tenant,
    post_alert,
    settled,
    wait_for,
)

# A database of the run's own Redis server that nothing else in the suite uses.
BROKER = os.environ["PULSE_TEST_REDIS_URL"].rsplit("/", 1)[0] + "/12"
ENV = {"CELERY_BROKER_URL": BROKER}


@pytest.fixture
def broker():
    client = redis_client.Redis.from_url(BROKER)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def fault_app(app, broker):
    """The API, sending its messages to this module's broker."""
    application = create_app(replace(Settings.from_env(), broker_url=BROKER), test_config={"TESTING": True})
    yield application
    application.extensions["pulse"].db.dispose()


@pytest.fixture
def processes():
    started: list = []

    def start(process):
        process.start()
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.stop()


def all_settled(client, tenant, count):
    jobs = settled(client, tenant, count)
    return jobs if jobs and len(jobs) == count else None


def test_worker_killed_mid_delivery_is_sent_again_with_the_same_id(fault_app, processes, receiver):
    client = fault_app.test_client()
    tenant = make_tenant(fault_app)
    receiver.delay = 1.5  # long enough to kill the worker while the request is in flight
    channel = create_channel(client, tenant, "webhook", {"url": receiver.url()})
    create_rule(client, tenant, channel["channel_id"])

    doomed = processes(WorkerProcess("doomed", ENV))
    post_alert(client, tenant)
    wait_for(lambda: receiver.at(), message="the delivery to be in flight")
    doomed.kill()

    processes(WorkerProcess("survivor", ENV))
    processes(BeatProcess("beat", ENV))
    [job] = wait_for(lambda: all_settled(client, tenant, 1), timeout=60, message="the lost job to be re-sent")
    assert job["status"] == "DELIVERED"
    ids = [r.headers["webhook-id"] for r in receiver.at()]
    assert ids == [str(job["job_id"])] * 2, "at least once, and a repeat carries the same id"
    log = client.get(f"/api/v2/deliveries/{job['job_id']}", headers=tenant.admin).get_json()["log"]
    assert [(row["attempt"], row["success"]) for row in log] == [(1, False), (2, True)]
    assert "worker lost" in log[0]["error"]


def hold_a_retry(client, tenant, broker, receiver, retry_after: int):
    """The first attempt fails with Retry-After: its retry waits in the worker as an ETA message."""
    receiver.script("/hook", [(503, {"Retry-After": str(retry_after)}, b"busy")])
    channel = create_channel(client, tenant, "webhook", {"url": receiver.url()})
    create_rule(client, tenant, channel["channel_id"])
    post_alert(client, tenant)
    wait_for(lambda: receiver.at(), message="the first attempt")
    wait_for(lambda: client.get("/api/v2/deliveries", headers=tenant.admin).get_json()["items"][0]["status"] == "RETRYING",
             message="the job to wait for its retry")
    time.sleep(0.5)
    # In the worker's hands only: Redis keeps no copy of a message a worker holds.
    assert broker.llen("pulse.critical") == 0 and broker.hlen("unacked") == 0


def test_worker_killed_holding_a_retry_loses_nothing(fault_app, broker, processes, receiver):
    """The sweeper finds the retry's message lost once the job is due, and sends it again."""
    client = fault_app.test_client()
    tenant = make_tenant(fault_app)
    doomed = processes(WorkerProcess("doomed", ENV))
    hold_a_retry(client, tenant, broker, receiver, retry_after=2)
    doomed.kill()

    processes(WorkerProcess("survivor", ENV))
    processes(BeatProcess("beat", ENV))
    [job] = wait_for(lambda: all_settled(client, tenant, 1), timeout=60, message="the retry to be sent after all")
    assert job["status"] == "DELIVERED"
    assert [r.headers["webhook-id"] for r in receiver.at()] == [str(job["job_id"])] * 2
    log = client.get(f"/api/v2/deliveries/{job['job_id']}", headers=tenant.admin).get_json()["log"]
    assert [(row["attempt"], row["success"]) for row in log] == [(1, False), (2, True)]


def test_worker_stopped_cleanly_puts_back_the_retry_it_held(fault_app, broker, processes, receiver):
    client = fault_app.test_client()
    tenant = make_tenant(fault_app)
    stopping = processes(WorkerProcess("stopping", ENV))
    hold_a_retry(client, tenant, broker, receiver, retry_after=3)
    stopping.stop()  # SIGTERM: Celery's warm shutdown
    assert broker.llen("pulse.critical") == 1, "the retry's message went back to its queue"

    processes(WorkerProcess("next", ENV))  # no beat: the message itself brings the retry
    [job] = wait_for(lambda: all_settled(client, tenant, 1), timeout=30, message="the retry to be sent")
    assert job["status"] == "DELIVERED" and len(receiver.at()) == 2


def test_redis_flushed_with_jobs_queued_loses_nothing(fault_app, broker, processes, receiver):
    client = fault_app.test_client()
    tenant = make_tenant(fault_app)
    channel = create_channel(client, tenant, "webhook", {"url": receiver.url()})
    create_rule(client, tenant, channel["channel_id"])
    for number in range(10):
        assert post_alert(client, tenant, device_id=f"pump-{number}")["jobs_queued"] == 1
    assert broker.llen("pulse.critical") == 10
    broker.flushdb()  # as after a Redis restart without persistence

    processes(WorkerProcess("after-flush", ENV))
    processes(BeatProcess("beat", ENV))
    jobs = wait_for(lambda: all_settled(client, tenant, 10), timeout=60, message="every job to be delivered")
    assert {job["status"] for job in jobs} == {"DELIVERED"}
    assert sorted(int(r.headers["webhook-id"]) for r in receiver.at()) == sorted(job["job_id"] for job in jobs)


def test_broker_unreachable_when_the_alert_is_posted(app, processes, receiver):
    dead_broker = replace(Settings.from_env(), broker_url="redis://127.0.0.1:9/0")
    offline = create_app(dead_broker, test_config={"TESTING": True})
    client = offline.test_client()
    tenant = make_tenant(offline)
    channel = create_channel(client, tenant, "webhook", {"url": receiver.url()})
    create_rule(client, tenant, channel["channel_id"])

    started = time.monotonic()
    response = client.post("/api/v2/alerts", json={"device_id": "pump-1", "alert_type": "overheat", "severity": 4, "message": "hot"}, headers=tenant.admin)
    assert response.status_code == 201
    assert time.monotonic() - started < 5
    [job] = client.get("/api/v2/deliveries", headers=tenant.admin).get_json()["items"]
    assert job["status"] == "PENDING"

    processes(WorkerProcess("recovered", ENV))
    processes(BeatProcess("beat", ENV))
    [job] = wait_for(lambda: all_settled(client, tenant, 1), timeout=60, message="the waiting job to be delivered")
    assert job["status"] == "DELIVERED"
    assert len(receiver.at()) == 1
    offline.extensions["pulse"].db.dispose()


def test_critical_alerts_do_not_wait_behind_minor_ones(fault_app, processes, receiver):
    client = fault_app.test_client()
    tenant = make_tenant(fault_app)
    receiver.delay = 0.2
    for alert_type in ("drift", "leak", "fire"):
        channel = create_channel(client, tenant, "webhook", {"url": receiver.url(f"/{alert_type}")})
        create_rule(client, tenant, channel["channel_id"], alert_type=alert_type)
    for number in range(20):
        post_alert(client, tenant, device_id=f"sensor-{number}", alert_type="drift", severity=1)
    post_alert(client, tenant, device_id="valve", alert_type="leak", severity=3)
    post_alert(client, tenant, device_id="boiler", alert_type="fire", severity=5)

    processes(WorkerProcess("single", ENV, concurrency=1))
    wait_for(lambda: receiver.at("/leak"), timeout=30, message="the high-severity delivery")
    order = [r.path.rsplit("/", 1)[-1] for r in sorted(receiver.requests, key=lambda r: r.at)]
    # One minor delivery may already be in flight when the worker starts; then critical,
    # then high, and the minor backlog after them.
    assert order.index("fire") <= 1, order
    assert order.index("leak") == order.index("fire") + 1, order


def test_one_of_two_workers_killed_mid_delivery_the_other_goes_on(fault_app, processes, receiver):
    client = fault_app.test_client()
    tenant = make_tenant(fault_app)
    receiver.delay = 1.5
    channel = create_channel(client, tenant, "webhook", {"url": receiver.url()})
    create_rule(client, tenant, channel["channel_id"])
    # At DEBUG, Celery logs each task it receives and each that succeeds: which worker sent what.
    doomed = processes(WorkerProcess("doomed", ENV, concurrency=2, loglevel="DEBUG"))
    survivor = processes(WorkerProcess("survivor", ENV, concurrency=2, loglevel="DEBUG"))
    processes(BeatProcess("beat", ENV))
    for number in range(8):
        post_alert(client, tenant, device_id=f"pump-{number}")
    wait_for(lambda: "Task pulse.deliver[" in doomed.log() and len(receiver.at()) >= 3, message="both workers to be sending")
    doomed.kill()

    jobs = wait_for(lambda: all_settled(client, tenant, 8), timeout=90, message="every job, the killed worker's too")
    assert {job["status"] for job in jobs} == {"DELIVERED"}
    received = [r.headers["webhook-id"] for r in receiver.at()]
    assert sorted(set(received), key=int) == sorted((str(job["job_id"]) for job in jobs), key=int)
    # Only what the killed worker had in flight (its two threads) is sent twice.
    assert len(received) - len(set(received)) <= 2
    assert "Task pulse.deliver[" in survivor.log() and "succeeded" in survivor.log()
