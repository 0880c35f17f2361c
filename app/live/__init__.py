"""The live feed behind GET /api/v2/ws (DESIGN §8): one fan-out per web process.

- `connection`: one client, its subscriptions and its bounded outbox with a writer of its own;
  a client that stops reading is dropped, nobody else waits for it.
- `hub`: who listens to what in this process, and the newest reading pushed per device.
- `feed`: `LiveFeed`, the client protocol and the fan-out of published events.
- `loops`: the background work: the Redis listener, the alert-list refresher, the shared
  telemetry poll.
- `ws`: the WebSocket route, a thin shell that `create_app()` registers.
- `metrics`: the feed's Prometheus gauges.

Everything but `ws` is plain Python, testable without Flask.
"""

from app.live.connection import Connection, Transport, TransportClosed
from app.live.feed import LiveFeed
from app.live.hub import Hub
from app.live.metrics import LiveFeedCollector

__all__ = ["Connection", "Hub", "LiveFeed", "LiveFeedCollector", "Transport", "TransportClosed"]
