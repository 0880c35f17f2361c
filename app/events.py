"""Live events over Redis pub/sub: alert changes and telemetry, for the WebSocket feed.

Any process may publish (web, worker); each web process runs one subscriber that fans the
events out to its WebSocket connections. Events are a live view, not a record: the database
is the record, so a publish that fails is logged and dropped, never an error for the caller.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

log = logging.getLogger(__name__)

CHANNEL = "pulse:events"


class EventPublisher:
    """Publishes JSON events on the Pulse channel of one Redis server."""

    def __init__(self, redis_url: str):
        self._redis = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=2)

    def publish(self, event: dict[str, Any]) -> None:
        try:
            self._redis.publish(CHANNEL, json.dumps(event, default=str))
        except redis.RedisError as exc:
            log.warning("live event not published (%s): %s", event.get("kind"), type(exc).__name__)

    def alert_changed(self, tenant_id: str, event: str, alert: dict[str, Any]) -> None:
        self.publish({"kind": "alert", "tenant_id": tenant_id, "event": event, "alert": alert})

    def silences_changed(self, tenant_id: str, action: str, silence: dict[str, Any]) -> None:
        """A silence was created, updated or deleted (`action`)."""
        self.publish({"kind": "silences", "tenant_id": tenant_id, "action": action, "silence": silence})

    def telemetry(self, tenant_id: str, device_id: str, data: dict[str, Any]) -> None:
        self.publish({"kind": "telemetry", "tenant_id": tenant_id, "device_id": device_id, "data": data})
