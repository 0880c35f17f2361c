"""The live feed's background work, one fan-out per process whatever the number of connections.

- `EventListener`: the Redis pub/sub subscriber that hears published events (any process may
  publish: web, worker) and hands each to the feed.
- `AlertRefresher`: the tenants' alert lists, read once per tenant per change.
- `TelemetryPoll`: one store query per subscribed device per WS_POLL_SECONDS, which finds
  readings written by other tools (Telegraf, say).

Each runs in plain `threading` threads. In the web process (gunicorn's gevent worker, which
monkey-patches the standard library) they are greenlets.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import timedelta
from typing import Any, Callable

import redis
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from app.db import Database
from app.events import CHANNEL
from app.live.connection import broadcast
from app.live.hub import Hub
from app.models import Alert
from app.status import ACTIVE_ALERT_STATUSES
from app.telemetry import Reading, TelemetryStore, TelemetryStoreError
from app.views import AlertView

log = logging.getLogger(__name__)

# The `alerts` list names at most this many active alerts, newest first.
ALERT_LIST_LIMIT = 1000
# Readings one poll takes from the store per device; a device that gets more than this
# between two polls (from tools other than Pulse's API) has its older ones skipped.
POLL_BATCH = 100
RECONNECT_DELAY_SECONDS = (0.5, 10.0)


def active_alerts(db: Database, tenant_id: str, limit: int = ALERT_LIST_LIMIT) -> list[dict[str, Any]]:
    """The tenant's OPEN and ACKNOWLEDGED alerts, newest first, as the API shows them."""
    with db.session(tenant_id) as session:
        rows = session.scalars(
            select(Alert)
            .where(Alert.tenant_id == tenant_id, Alert.status.in_(ACTIVE_ALERT_STATUSES))
            .order_by(Alert.alert_id.desc())
            .limit(limit)
        ).all()
        return [AlertView.of(alert).model_dump(mode="json") for alert in rows]


def telemetry_message(device_id: str, reading: Reading) -> dict[str, Any]:
    return {"type": "telemetry", "device_id": device_id, "data": reading.view()}


class AlertRefresher:
    """Sends a tenant's subscribers a fresh alert list after a change; changes that come meanwhile share it."""

    def __init__(self, hub: Hub, db: Database, workers: int):
        self._hub = hub
        self._db = db
        self.workers = workers
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._running: set[str] = set()
        self._again: set[str] = set()

    def schedule(self, tenant_id: str) -> None:
        """Refresh the tenant's lists soon: once, however many changes come before it runs."""
        with self._lock:
            if tenant_id in self._running:
                # The list being read may predate this change: read it once more afterwards.
                self._again.add(tenant_id)
                return
            if tenant_id in self._pending:
                return
            self._pending.add(tenant_id)
        self._queue.put(tenant_id)

    def run(self) -> None:
        """One worker: refresh the tenants scheduled, until `stop()`."""
        while True:
            tenant_id = self._queue.get()
            if tenant_id is None:
                return
            with self._lock:
                self._pending.discard(tenant_id)
                self._running.add(tenant_id)
            try:
                self.refresh(tenant_id)
            except Exception:  # a worker that died would silently end every later refresh
                log.exception("live feed: alert list refresh failed")
            finally:
                with self._lock:
                    self._running.discard(tenant_id)
                    again = tenant_id in self._again
                    self._again.discard(tenant_id)
            if again:
                self.schedule(tenant_id)

    def refresh(self, tenant_id: str) -> None:
        """Read the tenant's active alerts once and push the list to all its subscribers here."""
        if not self._hub.alert_listeners(tenant_id):
            return
        try:
            alerts = active_alerts(self._db, tenant_id)
        except SQLAlchemyError as exc:
            log.warning("live feed: alert list of tenant %s unavailable: %s", tenant_id, type(exc).__name__)
            return
        broadcast(self._hub.alert_listeners(tenant_id), {"type": "alerts", "alerts": alerts})

    def stop(self) -> None:
        for _ in range(self.workers):
            self._queue.put(None)


class TelemetryPoll:
    """One store query per subscribed device per interval; pushes the readings that are news."""

    def __init__(self, hub: Hub, store: TelemetryStore, seconds: float, stopping: threading.Event):
        self._hub = hub
        self._store = store
        self._seconds = max(0.05, seconds)
        self._stopping = stopping

    def poll_once(self) -> None:
        """Ask the store once about each subscribed device and push the readings that are news."""
        failed: list[str] = []
        for key in self._hub.devices():
            cursor = self._hub.cursor(key)
            # Only what is newer than the last reading pushed (1 µs on: the stores keep µs).
            after = cursor + timedelta(microseconds=1) if cursor is not None else None
            try:
                readings = self._store.latest(key[0], key[1], POLL_BATCH, after=after)
            except TelemetryStoreError as exc:
                failed.append(str(exc))
                continue
            for reading in self._hub.accept_polled(key, readings):
                broadcast(self._hub.device_listeners(key), telemetry_message(key[1], reading))
        if failed:
            log.warning("live feed: telemetry poll failed for %d devices: %s", len(failed), failed[0])

    def run(self) -> None:
        """Poll on a steady schedule until the feed stops."""
        deadline = time.monotonic()
        while True:
            deadline = max(deadline + self._seconds, time.monotonic())
            if self._stopping.wait(deadline - time.monotonic()):
                return
            try:
                self.poll_once()
            except Exception:  # the poll must outlive one bad round
                log.exception("live feed: telemetry poll failed")


class EventListener:
    """The Redis pub/sub subscriber of the Pulse channel: hands each event on, reconnects forever."""

    def __init__(
        self,
        redis_url: str,
        on_event: Callable[[bytes], None],
        on_reconnect: Callable[[], None],
        stopping: threading.Event,
    ):
        self._redis_url = redis_url
        self._on_event = on_event
        self._on_reconnect = on_reconnect
        self._stopping = stopping

    def run(self) -> None:
        """Listen until the feed stops; after an interruption, `on_reconnect` makes up for what was missed."""
        delay = RECONNECT_DELAY_SECONDS[0]
        interrupted = False
        while not self._stopping.is_set():
            # The health check pings a quiet connection, so a dead one is noticed within seconds
            # (TCP keepalive would not do for the embedded Redis's Unix socket).
            client = redis.Redis.from_url(self._redis_url, socket_connect_timeout=2, health_check_interval=10)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(CHANNEL)
                if interrupted:
                    log.info("live feed: listening on Redis again")
                    self._on_reconnect()
                interrupted = False
                delay = RECONNECT_DELAY_SECONDS[0]
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._hand_on(message["data"])
            except redis.RedisError as exc:
                if not interrupted:
                    log.warning("live feed: Redis pub/sub unavailable (%s); retrying", type(exc).__name__)
                interrupted = True
            except Exception:  # the listener must outlive anything; without it the feed is deaf
                log.exception("live feed: Redis listener failed; restarting it")
                interrupted = True
            finally:
                pubsub.close()
                client.close()
            self._stopping.wait(delay)
            delay = min(delay * 2, RECONNECT_DELAY_SECONDS[1])

    def _hand_on(self, raw: bytes) -> None:
        try:
            self._on_event(raw)
        except Exception:  # one bad event must not end the listener
            log.exception("live feed: event not dispatched")
