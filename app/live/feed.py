"""The live feed behind GET /api/v2/ws (DESIGN §8): one fan-out per web process.

`LiveFeed` is the process's feed: it registers connections in the `Hub`, speaks the client
protocol (subscribe, unsubscribe), turns published events into pushes, and runs the
background work of `app.live.loops` (the Redis listener, the alert-list refresher and the
shared telemetry poll), started on the first connection.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from app.db import Database
from app.live.connection import Connection, Transport, broadcast, encode
from app.live.hub import Hub
from app.live.loops import AlertRefresher, EventListener, TelemetryPoll, active_alerts, telemetry_message
from app.models import Device
from app.telemetry import Reading, TelemetryStore, TelemetryStoreError

log = logging.getLogger(__name__)

MAX_DEVICES_PER_CONNECTION = 1000
REFRESH_WORKERS = 2


def device_exists(db: Database, tenant_id: str, device_id: str) -> bool:
    """Whether the tenant has this device (another tenant's device does not count)."""
    with db.session(tenant_id) as session:
        return session.get(Device, (tenant_id, device_id)) is not None


def _shown(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


class LiveFeed:
    """This process's feed: connections, client protocol, published events, background work."""

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
        self._outbox_size = outbox_size
        self._started = False
        self._start_lock = threading.Lock()
        self._stopping = threading.Event()
        self.refresher = AlertRefresher(self.hub, db, REFRESH_WORKERS)
        self.poll = TelemetryPoll(self.hub, store, poll_seconds, self._stopping)
        self.listener = EventListener(redis_url, self.dispatch, self._heard_again, self._stopping)

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
        elif event.get("kind") == "silences":
            self._silences_changed(event)

    def _alert_changed(self, event: dict[str, Any]) -> None:
        tenant_id = event["tenant_id"]
        listeners = self.hub.alert_listeners(tenant_id)
        if not listeners:
            return
        broadcast(listeners, {"type": "alert", "event": event.get("event"), "alert": event.get("alert")})
        self.refresher.schedule(tenant_id)

    def _silences_changed(self, event: dict[str, Any]) -> None:
        # Alert subscribers watch the on-call state, and silences are part of it.
        listeners = self.hub.alert_listeners(event["tenant_id"])
        if listeners:
            broadcast(listeners, {"type": "silences", "action": event.get("action"), "silence": event.get("silence")})

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
            broadcast(self.hub.device_listeners(key), telemetry_message(device_id, reading))

    def _heard_again(self) -> None:
        # Changes made while the listener was away were not heard: resend every alert list.
        for tenant_id in self.hub.alert_tenants():
            self.refresher.schedule(tenant_id)

    # Lifecycle ---------------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._started:
            return
        with self._start_lock:
            if self._started:
                return
            workers = [("live-feed-listener", self.listener.run), ("live-feed-poll", self.poll.run)]
            workers += [("live-feed-refresh", self.refresher.run)] * self.refresher.workers
            for name, target in workers:
                threading.Thread(target=target, name=name, daemon=True).start()
            self._started = True

    def stop(self) -> None:
        """End the background work (the listener within a second)."""
        self._stopping.set()
        self.refresher.stop()

    def shutdown(self, reason: str = "the server is restarting: reconnect") -> None:
        """The process is stopping: stop the background work and ask every client to reconnect."""
        self.stop()
        connections = self.hub.connections()
        for connection in connections:
            connection.go_away(reason)
        if connections:
            log.info("live feed: asked %d clients to reconnect elsewhere", len(connections))


