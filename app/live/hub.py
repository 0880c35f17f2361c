"""Who listens to what in one web process, and the newest reading pushed per device.

Connections are indexed by tenant (alerts) and by (tenant, device); for each subscribed
device the hub keeps the timestamp of the newest reading already pushed, so a reading is
never pushed twice, whether it was published or found by the poll.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from app.live.connection import Connection
from app.telemetry import Reading

DeviceKey = tuple[str, str]

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

