"""Prometheus gauges of the live feed, read from the hub at scrape time."""

from __future__ import annotations

from typing import Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from app.live.feed import LiveFeed


class LiveFeedCollector:
    """Connections, subscriptions, and dropped slow clients of this process's feed."""

    def __init__(self, feed: Callable[[], LiveFeed]):
        self._feed = feed

    def collect(self):
        feed = self._feed()
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
