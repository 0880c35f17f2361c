"""The live feed behind GET /api/v2/ws (DESIGN §8): one fan-out per web process.

- `Hub` knows who listens to what in this process: connections by tenant (alerts) and by
  (tenant, device), and for each subscribed device the timestamp of the newest reading
  already pushed, so a reading is never pushed twice.
- `Connection` is one client: its subscriptions and a bounded outbox drained by a writer of
  its own. Pushing never waits: a client that stops reading fills only its own outbox, and
  when that overflows the client is dropped. Nobody else ever waits for it.
- `LiveFeed` is the process's feed: the client protocol (subscribe, unsubscribe), the Redis
  pub/sub listener that turns published events (any process may publish: web, worker) into
  pushes, the alert-list refresher (one query per tenant per change, whatever the number of
  connections), and the shared telemetry poll (one store query per subscribed device per
  WS_POLL_SECONDS) that finds readings written by other tools, Telegraf say.

The background work runs in plain `threading` threads, started on the first connection. In
the web process (gunicorn's gevent worker, which monkey-patches the standard library) they
are greenlets, so a thousand connections cost a few thousand small greenlets, not threads.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from datetime import datetime, timedelta
from typing import Any, Iterable, Protocol

import redis
from flask import Flask, current_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from app.api.views import alert_view
from app.auth import ROLES, InvalidToken, MissingScope, Principal, decode_token, principal_from_claims
from app.config import Settings
from app.db import Database
from app.events import CHANNEL
from app.models import Alert, Device
from app.status import ACTIVE_ALERT_STATUSES
from app.telemetry import Reading, TelemetryStore, TelemetryStoreError

log = logging.getLogger(__name__)

# Close codes of the handshake (DESIGN §8).
CLOSE_UNAUTHENTICATED = 4001
CLOSE_FORBIDDEN = 4003
CLOSE_GOING_AWAY = 1001

ACTIVE_STATUSES = ACTIVE_ALERT_STATUSES
# The `alerts` list names at most this many active alerts, newest first.
ALERT_LIST_LIMIT = 1000
# Readings one poll takes from the store per device; a device that gets more than this
# between two polls (from tools other than Pulse's API) has its older ones skipped.
POLL_BATCH = 100
MAX_DEVICES_PER_CONNECTION = 1000
REFRESH_WORKERS = 2
RECONNECT_DELAY_SECONDS = (0.5, 10.0)

DeviceKey = tuple[str, str]


class Refused(Exception):
    """The handshake is refused: the connection is closed with `code`."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def authorize(settings: Settings, token: str | None) -> Principal:
    """The caller named by the `?token=` of a feed connection; Refused(4001 or 4003) otherwise.

    4001: no token, or one that is malformed, forged or expired. 4003: a genuine token whose
    role is not a customer role, or that names no tenant (the REST API answers such a token
    with 401; the feed's contract tells the two apart).
    """
    if not token:
        raise Refused(CLOSE_UNAUTHENTICATED, "a token is required: connect to /api/v2/ws?token=<JWT>")
    try:
        claims = decode_token(settings, token)
    except MissingScope:
        raise Refused(CLOSE_FORBIDDEN, "the token names no tenant or no role") from None
    except InvalidToken as exc:
        raise Refused(CLOSE_UNAUTHENTICATED, str(exc)) from None
    if claims["role"] not in ROLES:
        raise Refused(CLOSE_FORBIDDEN, f"role {claims['role']!r} has no access to the live feed")
    return principal_from_claims(claims)


class TransportClosed(Exception):
    """The client's connection is gone: nothing more can be sent on it."""


class Transport(Protocol):
    """How a connection reaches its client (the WebSocket in `app.ws`)."""

    def send(self, text: str) -> None:
        """Write one text message; TransportClosed if the connection is gone or the write timed out."""

    def abort(self) -> None:
        """Drop the connection at once, without a closing handshake."""

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake with `code`."""


_STOP = object()


class Connection:
    """One client of the feed: who it is, what it listens to, and its own outbox and writer."""

    def __init__(self, tenant_id: str, subject: str, transport: Transport, outbox_size: int):
        self.tenant_id = tenant_id
        self.subject = subject
        self.devices: set[str] = set()
        self.alerts = False
        self.opened_at = time.monotonic()
        self.drop_reason: str | None = None
        self._closed = False
        self._transport = transport
        self._outbox: queue.Queue = queue.Queue(maxsize=max(1, outbox_size))
        self._writer = threading.Thread(target=self._drain, name="live-feed-writer", daemon=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        self._writer.start()

    def push(self, text: str) -> bool:
        """Queue one message without waiting; a full outbox drops the connection instead."""
        if self._closed:
            return False
        try:
            self._outbox.put_nowait(text)
        except queue.Full:
            self.drop(f"outbox full ({self._outbox.maxsize} messages): the client is not reading", logging.WARNING)
            return False
        return True

    def drop(self, reason: str, level: int = logging.INFO) -> None:
        """Disconnect the client now (from any thread); its handler then cleans up."""
        if self._closed:
            return
        self._closed = True
        self.drop_reason = reason
        log.log(level, "live feed: dropping a connection of tenant %s: %s", self.tenant_id, reason)
        self._transport.abort()
        self._stop_writer()

    def go_away(self, reason: str) -> None:
        """Ask the client to reconnect later (close code 1001); its handler then cleans up."""
        self._closed = True
        self._stop_writer()
        try:
            self._transport.close(CLOSE_GOING_AWAY, reason)
        except TransportClosed:
            pass

    def close(self) -> None:
        """The connection has ended: stop the writer; whatever is still queued is discarded."""
        self._closed = True
        self._stop_writer()

    def _stop_writer(self) -> None:
        while True:
            try:
                self._outbox.put_nowait(_STOP)
                return
            except queue.Full:
                try:
                    self._outbox.get_nowait()
                except queue.Empty:
                    pass

    def _drain(self) -> None:
        while True:
            text = self._outbox.get()
            if text is _STOP or self._closed:
                return
            try:
                self._transport.send(text)
            except TransportClosed as exc:
                self.drop(f"write failed: {exc}")
                return


# A device's cursor before its first reading is known (the subscription's first store
# query has not answered yet, or failed).
_PENDING = object()


class Hub:
    """Who listens to what in this process, and the newest reading pushed per device."""

    def __init__(self):
        self._lock = threading.Lock()
        self._connections: set[Connection] = set()
        self._alerts: dict[str, set[Connection]] = {}
        self._devices: dict[DeviceKey, set[Connection]] = {}
        self._cursors: dict[DeviceKey, Any] = {}
        self.dropped = 0

    def add(self, connection: Connection) -> None:
        with self._lock:
            self._connections.add(connection)

    def connections(self) -> list[Connection]:
        with self._lock:
            return list(self._connections)

    def remove(self, connection: Connection) -> None:
        """Forget the connection and every one of its subscriptions."""
        with self._lock:
            self._connections.discard(connection)
            if connection.drop_reason is not None:
                self.dropped += 1
            if connection.alerts:
                self._discard(self._alerts, connection.tenant_id, connection)
                connection.alerts = False
            for device_id in connection.devices:
                self._discard_device(connection, (connection.tenant_id, device_id))
            connection.devices = set()

    def subscribe_alerts(self, connection: Connection) -> None:
        with self._lock:
            connection.alerts = True
            self._alerts.setdefault(connection.tenant_id, set()).add(connection)

    def unsubscribe_alerts(self, connection: Connection) -> None:
        with self._lock:
            connection.alerts = False
            self._discard(self._alerts, connection.tenant_id, connection)

    def subscribe_device(self, connection: Connection, device_id: str) -> bool:
        """Subscribe; True when the connection is the device's first subscriber in this process."""
        key = (connection.tenant_id, device_id)
        with self._lock:
            connection.devices.add(device_id)
            listeners = self._devices.setdefault(key, set())
            first = not listeners
            listeners.add(connection)
            if first:
                self._cursors[key] = _PENDING
            return first

    def unsubscribe_device(self, connection: Connection, device_id: str) -> None:
        with self._lock:
            if device_id in connection.devices:
                connection.devices.discard(device_id)
                self._discard_device(connection, (connection.tenant_id, device_id))

    def alert_listeners(self, tenant_id: str) -> list[Connection]:
        with self._lock:
            return list(self._alerts.get(tenant_id, ()))

    def device_listeners(self, key: DeviceKey) -> list[Connection]:
        with self._lock:
            return list(self._devices.get(key, ()))

    def alert_tenants(self) -> list[str]:
        with self._lock:
            return list(self._alerts)

    def devices(self) -> list[DeviceKey]:
        """Every (tenant, device) with at least one subscriber."""
        with self._lock:
            return list(self._devices)

    def cursor(self, key: DeviceKey) -> datetime | None:
        """The newest reading pushed for the device; None if none is known (or no baseline yet)."""
        with self._lock:
            value = self._cursors.get(key)
            return value if isinstance(value, datetime) else None

    def set_baseline(self, key: DeviceKey, newest: datetime | None) -> None:
        """What the store held when the device got its first subscriber: not news."""
        with self._lock:
            if key not in self._cursors:
                return
            current = self._cursors[key]
            if current is _PENDING:
                self._cursors[key] = newest
            elif newest is not None and (current is None or newest > current):
                self._cursors[key] = newest

    def accept_pushed(self, key: DeviceKey, reading: Reading) -> bool:
        """Whether a published reading is news for the device's subscribers (and mark it pushed)."""
        with self._lock:
            if key not in self._cursors:
                return False
            current = self._cursors[key]
            if isinstance(current, datetime) and reading.timestamp <= current:
                return False
            self._cursors[key] = reading.timestamp
            return True

    def accept_polled(self, key: DeviceKey, readings: list[Reading]) -> list[Reading]:
        """The readings (given newest first) that are news, oldest first; marks them pushed.

        A device without a baseline yet takes the newest reading as its baseline: readings
        already stored when it was subscribed are history, not news.
        """
        with self._lock:
            if key not in self._cursors:
                return []
            current = self._cursors[key]
            if current is _PENDING:
                self._cursors[key] = readings[0].timestamp if readings else None
                return []
            fresh = [r for r in reversed(readings) if current is None or r.timestamp > current]
            if fresh:
                self._cursors[key] = fresh[-1].timestamp
            return fresh

    def stats(self, tenant_id: str | None = None) -> dict[str, int]:
        """Counts of connections and subscriptions, for one tenant or the whole process."""
        with self._lock:
            connections = [c for c in self._connections if tenant_id is None or c.tenant_id == tenant_id]
            device_keys = [key for key in self._devices if tenant_id is None or key[0] == tenant_id]
            return {
                "connections": len(connections),
                "alert_subscriptions": sum(
                    len(listeners)
                    for tenant, listeners in self._alerts.items()
                    if tenant_id is None or tenant == tenant_id
                ),
                "device_subscriptions": sum(len(self._devices[key]) for key in device_keys),
                "devices": len(device_keys),
            }

    @staticmethod
    def _discard(index: dict, key: Any, connection: Connection) -> None:
        listeners = index.get(key)
        if listeners is not None:
            listeners.discard(connection)
            if not listeners:
                del index[key]

    def _discard_device(self, connection: Connection, key: DeviceKey) -> None:
        self._discard(self._devices, key, connection)
        if key not in self._devices:
            self._cursors.pop(key, None)


def active_alerts(db: Database, tenant_id: str, limit: int = ALERT_LIST_LIMIT) -> list[dict[str, Any]]:
    """The tenant's OPEN and ACKNOWLEDGED alerts, newest first, as the API shows them."""
    with db.session(tenant_id) as session:
        rows = session.scalars(
            select(Alert)
            .where(Alert.tenant_id == tenant_id, Alert.status.in_(ACTIVE_STATUSES))
            .order_by(Alert.alert_id.desc())
            .limit(limit)
        ).all()
        return [alert_view(alert) for alert in rows]


def device_exists(db: Database, tenant_id: str, device_id: str) -> bool:
    """Whether the tenant has this device (another tenant's device does not count)."""
    with db.session(tenant_id) as session:
        return session.get(Device, (tenant_id, device_id)) is not None


def telemetry_message(device_id: str, reading: Reading) -> dict[str, Any]:
    return {"type": "telemetry", "device_id": device_id, "data": reading.view()}


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), default=str)


def _shown(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


class LiveFeed:
    """This process's feed: client protocol, Redis listener, alert refresher, telemetry poll."""

    def __init__(
        self,
        db: Database,
        store: TelemetryStore,
        redis_url: str,
        poll_seconds: float = 5.0,
        outbox_size: int = 256,
    ):
        self.hub = Hub()
        self._db = db
        self._store = store
        self._redis_url = redis_url
        self._poll_seconds = max(0.05, poll_seconds)
        self._outbox_size = outbox_size
        self._started = False
        self._start_lock = threading.Lock()
        self._stopping = threading.Event()
        self._refresh_queue: queue.Queue[str | None] = queue.Queue()
        self._refresh_lock = threading.Lock()
        self._refresh_pending: set[str] = set()
        self._refresh_running: set[str] = set()
        self._refresh_again: set[str] = set()

    # Connections -------------------------------------------------------------------------

    def connect(self, tenant_id: str, subject: str, transport: Transport) -> Connection:
        """A new client: registered, with its writer running (the background work starts with the first)."""
        self._ensure_started()
        connection = Connection(tenant_id, subject, transport, self._outbox_size)
        self.hub.add(connection)
        connection.start()
        log.info("live feed: %s of tenant %s connected", subject, tenant_id)
        return connection

    def disconnect(self, connection: Connection) -> None:
        """The client is gone: stop its writer and remove every subscription it held."""
        connection.close()
        self.hub.remove(connection)
        stats = self.hub.stats(connection.tenant_id)
        log.info(
            "live feed: %s of tenant %s disconnected after %.1f s%s; tenant %s now has %d connections, "
            "%d alert subscriptions, %d device subscriptions",
            connection.subject,
            connection.tenant_id,
            time.monotonic() - connection.opened_at,
            f" (dropped: {connection.drop_reason})" if connection.drop_reason else "",
            connection.tenant_id,
            stats["connections"],
            stats["alert_subscriptions"],
            stats["device_subscriptions"],
        )

    # Client protocol ---------------------------------------------------------------------

    def handle(self, connection: Connection, raw: str | bytes) -> None:
        """Act on one client message: subscribe or unsubscribe, else answer with an error."""
        try:
            message = json.loads(raw)
        except ValueError:
            return self._error(connection, "the message is not valid JSON")
        if not isinstance(message, dict):
            return self._error(connection, "a message must be a JSON object")
        action = message.get("action")
        if action not in ("subscribe", "unsubscribe"):
            return self._error(connection, 'unknown action: use "subscribe" or "unsubscribe"')
        kind = message.get("type")
        if kind == "alerts":
            if action == "subscribe":
                return self._subscribe_alerts(connection)
            self.hub.unsubscribe_alerts(connection)
            return self._send(connection, {"type": "unsubscribed", "channel": "alerts"})
        if kind == "device":
            device_id = message.get("device_id")
            if not isinstance(device_id, str) or not device_id:
                return self._error(connection, "device_id is required for a device subscription")
            if action == "subscribe":
                return self._subscribe_device(connection, device_id)
            self.hub.unsubscribe_device(connection, device_id)
            return self._send(connection, {"type": "unsubscribed", "channel": "device", "device_id": device_id})
        return self._error(connection, 'unknown type: use "device" or "alerts"')

    def _subscribe_alerts(self, connection: Connection) -> None:
        # Subscribed before the list is read: a change committed meanwhile is pushed too.
        self.hub.subscribe_alerts(connection)
        self._send(connection, {"type": "subscribed", "channel": "alerts"})
        try:
            alerts = active_alerts(self._db, connection.tenant_id)
        except SQLAlchemyError as exc:
            log.warning("live feed: alert list of tenant %s unavailable: %s", connection.tenant_id, type(exc).__name__)
            return self._error(connection, "the alert list is unavailable right now; it comes with the next change")
        self._send(connection, {"type": "alerts", "alerts": alerts})

    def _subscribe_device(self, connection: Connection, device_id: str) -> None:
        confirmation = {"type": "subscribed", "channel": "device", "device_id": device_id}
        if device_id in connection.devices:
            return self._send(connection, confirmation)
        if len(connection.devices) >= MAX_DEVICES_PER_CONNECTION:
            return self._error(connection, f"at most {MAX_DEVICES_PER_CONNECTION} device subscriptions per connection")
        try:
            known = device_exists(self._db, connection.tenant_id, device_id)
        except SQLAlchemyError as exc:
            log.warning("live feed: device lookup failed: %s", type(exc).__name__)
            return self._error(connection, "devices cannot be checked right now; subscribe again shortly")
        if not known:
            return self._error(connection, f"device {_shown(device_id)} not found")
        key = (connection.tenant_id, device_id)
        if self.hub.subscribe_device(connection, device_id):
            # What the store holds before the confirmation is history; what comes after is news.
            try:
                newest = self._store.latest(key[0], key[1], 1)
            except TelemetryStoreError as exc:
                # The poll takes the baseline once the store answers again.
                log.warning("live feed: telemetry store unavailable: %s", exc)
            else:
                self.hub.set_baseline(key, newest[0].timestamp if newest else None)
        self._send(connection, confirmation)

    def _send(self, connection: Connection, message: dict[str, Any]) -> None:
        connection.push(encode(message))

    def _error(self, connection: Connection, text: str) -> None:
        self._send(connection, {"type": "error", "message": text})

    def _broadcast(self, connections: Iterable[Connection], message: dict[str, Any]) -> None:
        """One encoding, shared by every connection's outbox."""
        text = encode(message)
        for connection in connections:
            connection.push(text)

    # Published events --------------------------------------------------------------------

    def dispatch(self, raw: str | bytes) -> None:
        """Fan one event published on the Pulse channel out to this process's subscribers."""
        try:
            event = json.loads(raw)
        except ValueError:
            log.warning("live feed: ignored an event that is not JSON")
            return
        if not isinstance(event, dict) or not isinstance(event.get("tenant_id"), str):
            log.warning("live feed: ignored an event without a tenant")
            return
        if event.get("kind") == "alert":
            self._alert_changed(event)
        elif event.get("kind") == "telemetry":
            self._telemetry_arrived(event)

    def _alert_changed(self, event: dict[str, Any]) -> None:
        tenant_id = event["tenant_id"]
        listeners = self.hub.alert_listeners(tenant_id)
        if not listeners:
            return
        self._broadcast(listeners, {"type": "alert", "event": event.get("event"), "alert": event.get("alert")})
        self._schedule_refresh(tenant_id)

    def _telemetry_arrived(self, event: dict[str, Any]) -> None:
        device_id = event.get("device_id")
        if not isinstance(device_id, str):
            return
        try:
            reading = Reading.from_view(event.get("data") or {})
        except (KeyError, TypeError, ValueError):
            log.warning("live feed: ignored a telemetry event without a valid reading")
            return
        key = (event["tenant_id"], device_id)
        if self.hub.accept_pushed(key, reading):
            self._broadcast(self.hub.device_listeners(key), telemetry_message(device_id, reading))

    # Alert lists: one query per tenant per change ----------------------------------------

    def _schedule_refresh(self, tenant_id: str) -> None:
        """Send the tenant's subscribers a fresh list soon; changes that come meanwhile share it."""
        with self._refresh_lock:
            if tenant_id in self._refresh_running:
                # The list being read may predate this change: read it once more afterwards.
                self._refresh_again.add(tenant_id)
                return
            if tenant_id in self._refresh_pending:
                return
            self._refresh_pending.add(tenant_id)
        self._refresh_queue.put(tenant_id)

    def _refresh_worker(self) -> None:
        while True:
            tenant_id = self._refresh_queue.get()
            if tenant_id is None:
                return
            with self._refresh_lock:
                self._refresh_pending.discard(tenant_id)
                self._refresh_running.add(tenant_id)
            try:
                self.refresh_alerts(tenant_id)
            except Exception:  # a worker that died would silently end every later refresh
                log.exception("live feed: alert list refresh failed")
            finally:
                with self._refresh_lock:
                    self._refresh_running.discard(tenant_id)
                    again = tenant_id in self._refresh_again
                    self._refresh_again.discard(tenant_id)
            if again:
                self._schedule_refresh(tenant_id)

    def refresh_alerts(self, tenant_id: str) -> None:
        """Read the tenant's active alerts once and push the list to all its subscribers here."""
        if not self.hub.alert_listeners(tenant_id):
            return
        try:
            alerts = active_alerts(self._db, tenant_id)
        except SQLAlchemyError as exc:
            log.warning("live feed: alert list of tenant %s unavailable: %s", tenant_id, type(exc).__name__)
            return
        self._broadcast(self.hub.alert_listeners(tenant_id), {"type": "alerts", "alerts": alerts})

    # Telemetry poll: one store query per subscribed device per interval -------------------

    def poll_once(self) -> None:
        """Ask the store once about each subscribed device and push the readings that are news."""
        failed: list[str] = []
        for key in self.hub.devices():
            cursor = self.hub.cursor(key)
            # Only what is newer than the last reading pushed (1 µs on: the stores keep µs).
            after = cursor + timedelta(microseconds=1) if cursor is not None else None
            try:
                readings = self._store.latest(key[0], key[1], POLL_BATCH, after=after)
            except TelemetryStoreError as exc:
                failed.append(str(exc))
                continue
            for reading in self.hub.accept_polled(key, readings):
                self._broadcast(self.hub.device_listeners(key), telemetry_message(key[1], reading))
        if failed:
            log.warning("live feed: telemetry poll failed for %d devices: %s", len(failed), failed[0])

    def _poll_loop(self) -> None:
        deadline = time.monotonic()
        while True:
            deadline = max(deadline + self._poll_seconds, time.monotonic())
            if self._stopping.wait(deadline - time.monotonic()):
                return
            try:
                self.poll_once()
            except Exception:  # the poll must outlive one bad round
                log.exception("live feed: telemetry poll failed")

    # Redis pub/sub listener --------------------------------------------------------------

    def _listen(self) -> None:
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
                    # Changes made while we were away were not heard: resend every alert list.
                    log.info("live feed: listening on Redis again")
                    for tenant_id in self.hub.alert_tenants():
                        self._schedule_refresh(tenant_id)
                interrupted = False
                delay = RECONNECT_DELAY_SECONDS[0]
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._dispatch_safely(message["data"])
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

    def _dispatch_safely(self, raw: bytes) -> None:
        try:
            self.dispatch(raw)
        except Exception:  # one bad event must not end the listener
            log.exception("live feed: event not dispatched")

    # Lifecycle ---------------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._started:
            return
        with self._start_lock:
            if self._started:
                return
            workers = [("live-feed-listener", self._listen), ("live-feed-poll", self._poll_loop)]
            workers += [("live-feed-refresh", self._refresh_worker)] * REFRESH_WORKERS
            for name, target in workers:
                threading.Thread(target=target, name=name, daemon=True).start()
            self._started = True

    def stop(self) -> None:
        """End the background work (the listener within a second)."""
        self._stopping.set()
        for _ in range(REFRESH_WORKERS):
            self._refresh_queue.put(None)

    def shutdown(self, reason: str = "the server is restarting: reconnect") -> None:
        """The process is stopping: stop the background work and ask every client to reconnect."""
        self.stop()
        connections = self.hub.connections()
        for connection in connections:
            connection.go_away(reason)
        if connections:
            log.info("live feed: asked %d clients to reconnect elsewhere", len(connections))


class LiveFeedCollector:
    """Prometheus gauges of the feed: connections, subscriptions, dropped slow clients."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):
        feed: LiveFeed = self.app.extensions["live"]
        stats = feed.hub.stats()
        yield GaugeMetricFamily(
            "pulse_ws_connections", "Open live-feed WebSocket connections", value=stats["connections"]
        )
        subscriptions = GaugeMetricFamily("pulse_ws_subscriptions", "Live-feed subscriptions", labels=["channel"])
        subscriptions.add_metric(["alerts"], stats["alert_subscriptions"])
        subscriptions.add_metric(["device"], stats["device_subscriptions"])
        yield subscriptions
        yield CounterMetricFamily(
            "pulse_ws_dropped_connections",
            "Live-feed connections dropped (slow, stalled or dead clients)",
            value=feed.hub.dropped,
        )


def init_app(app: Flask) -> None:
    state = app.extensions["pulse"]
    settings: Settings = state.settings
    app.extensions["live"] = LiveFeed(
        db=state.db,
        store=app.extensions["telemetry"],
        redis_url=settings.redis_url,
        poll_seconds=settings.ws_poll_seconds,
        outbox_size=settings.ws_outbox_messages,
    )


def live_feed() -> LiveFeed:
    """The current app's feed."""
    return current_app.extensions["live"]
