"""The live feed's fan-out in plain Python (app.live): outboxes, subscriptions, and the rule
that a reading is pushed once however it is found. The transport here is an in-memory
stand-in for the WebSocket; everything of Pulse's is real."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

from app.live import Connection, Hub, LiveFeed, TransportClosed
from app.telemetry import Reading
from tests.support import wait_for

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


class MemoryTransport:
    """Collects what a connection writes; `stall()` makes writes hang like a client that stopped reading."""

    def __init__(self):
        self.sent: list[str] = []
        self.aborted = False
        self._flowing = threading.Event()
        self._flowing.set()

    def stall(self):
        self._flowing.clear()

    def send(self, text: str) -> None:
        while not self._flowing.wait(0.05):
            if self.aborted:
                raise TransportClosed("aborted")
        if self.aborted:
            raise TransportClosed("aborted")
        self.sent.append(text)

    def abort(self) -> None:
        self.aborted = True

    def close(self, code: int, reason: str) -> None:
        self.closed_with = code


def connection(tenant_id: str = "t-1", outbox: int = 8) -> tuple[Connection, MemoryTransport]:
    transport = MemoryTransport()
    conn = Connection(tenant_id, "someone", transport, outbox)
    conn.start()
    return conn, transport


def test_push_never_waits_and_a_full_outbox_drops_the_client():
    conn, transport = connection(outbox=4)
    transport.stall()
    started = time.monotonic()
    results = [conn.push(f"message {n}") for n in range(20)]
    assert time.monotonic() - started < 0.5
    assert results[:4] == [True] * 4
    assert False in results
    assert conn.closed and transport.aborted
    assert "outbox full" in conn.drop_reason


def test_stalled_client_does_not_hold_up_the_others():
    feed = LiveFeed(db=None, store=None, redis_url="redis://unused")
    stalled, stalled_transport = connection(outbox=4)
    healthy, healthy_transport = connection(outbox=4)
    stalled_transport.stall()
    for conn in (stalled, healthy):
        feed.hub.add(conn)
        feed.hub.subscribe_device(conn, "pump")
        feed.hub.set_baseline(("t-1", "pump"), None)
    for second in range(50):
        feed.dispatch(published_reading("t-1", "pump", T0 + timedelta(seconds=second)))
        wait_for(lambda n=second: len(healthy_transport.sent) == n + 1, 2, 0.005, message="the healthy client's push")
    assert stalled.closed and not healthy.closed


def published_reading(tenant_id: str, device_id: str, at: datetime) -> str:
    return json.dumps(
        {"kind": "telemetry", "tenant_id": tenant_id, "device_id": device_id, "data": Reading(at, {"v": 1}).view()}
    )


def test_remove_forgets_every_subscription_and_cursor():
    hub = Hub()
    leaving, _ = connection()
    staying, _ = connection()
    for conn in (leaving, staying):
        hub.add(conn)
        hub.subscribe_alerts(conn)
    hub.subscribe_device(leaving, "a")
    hub.subscribe_device(leaving, "b")
    hub.subscribe_device(staying, "b")
    hub.set_baseline(("t-1", "a"), T0)

    hub.remove(leaving)

    assert hub.stats("t-1") == {"connections": 1, "alert_subscriptions": 1, "device_subscriptions": 1, "devices": 1}
    assert hub.alert_listeners("t-1") == [staying]
    assert hub.devices() == [("t-1", "b")]
    assert hub.cursor(("t-1", "a")) is None
    assert not hub.accept_pushed(("t-1", "a"), Reading(T0 + timedelta(hours=1), {}))


def test_tenants_never_share_listeners():
    hub = Hub()
    mine, _ = connection("t-1")
    theirs, _ = connection("t-2")
    for conn in (mine, theirs):
        hub.add(conn)
        hub.subscribe_alerts(conn)
        hub.subscribe_device(conn, "same-name")
    assert hub.alert_listeners("t-1") == [mine]
    assert hub.device_listeners(("t-2", "same-name")) == [theirs]


def test_a_reading_is_pushed_once_whether_published_or_polled():
    hub = Hub()
    conn, _ = connection()
    hub.add(conn)
    key = ("t-1", "pump")
    hub.subscribe_device(conn, "pump")
    hub.set_baseline(key, T0)

    published = Reading(T0 + timedelta(seconds=1), {"v": 1})
    assert hub.accept_pushed(key, published)
    assert not hub.accept_pushed(key, published)
    later = Reading(T0 + timedelta(seconds=2), {"v": 2})
    # The poll finds both in the store: only the one not pushed yet is news.
    assert hub.accept_polled(key, [later, published, Reading(T0, {"v": 0})]) == [later]
    assert not hub.accept_pushed(key, later)
    assert not hub.accept_pushed(key, Reading(T0 - timedelta(minutes=5), {"late": 1}))


def test_what_the_store_held_at_subscription_is_history():
    hub = Hub()
    conn, _ = connection()
    hub.add(conn)
    key = ("t-1", "pump")
    hub.subscribe_device(conn, "pump")
    # No baseline yet (the store did not answer): the first poll takes one and pushes nothing.
    assert hub.accept_polled(key, [Reading(T0, {"v": 1})]) == []
    newer = Reading(T0 + timedelta(seconds=5), {"v": 2})
    assert hub.accept_polled(key, [newer, Reading(T0, {"v": 1})]) == [newer]


def test_device_without_readings_takes_every_new_one():
    hub = Hub()
    conn, _ = connection()
    hub.add(conn)
    key = ("t-1", "pump")
    hub.subscribe_device(conn, "pump")
    hub.set_baseline(key, None)
    first, second = Reading(T0, {"v": 1}), Reading(T0 + timedelta(seconds=1), {"v": 2})
    assert hub.accept_polled(key, [second, first]) == [first, second]
