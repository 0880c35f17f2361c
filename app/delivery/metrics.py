"""The delivery metrics every worker serves (DESIGN §9), on 127.0.0.1:WORKER_METRICS_PORT/metrics.

* `pulse_delivery_attempts_total{channel_type, outcome}`: attempts by their outcome,
  `delivered`, `retry` (a transient failure with attempts left) or `failed` (dead-lettered);
* `pulse_delivery_seconds{channel_type}`: a histogram of attempt durations;
* `pulse_channel_circuit_open`: channels whose circuit is open now (read from Redis at scrape
  time, so every worker answers the same).

Counting costs a dictionary lookup and an addition per attempt; the figures live in the worker
process and start from zero when it starts, as Prometheus counters do.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

from app.delivery.admission import ChannelAdmission
from app.delivery.records import AttemptRecord

log = logging.getLogger(__name__)

# From a local receiver's milliseconds to the attempt timeout's tens of seconds.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class OpenCircuits:
    """`pulse_channel_circuit_open`, from the shared circuit state."""

    def __init__(self, admission: ChannelAdmission):
        self._admission = admission

    def collect(self):
        yield GaugeMetricFamily(
            "pulse_channel_circuit_open", "Channels whose circuit breaker is open now", value=len(self._admission.open_circuits())
        )


class DeliveryMetrics:
    """The worker's delivery metrics and the HTTP endpoint that serves them."""

    def __init__(self, admission: ChannelAdmission):
        self.registry = CollectorRegistry()
        self._attempts = Counter(
            "pulse_delivery_attempts",
            "Delivery attempts by channel type and outcome (delivered, retry, failed)",
            ["channel_type", "outcome"],
            registry=self.registry,
        )
        self._seconds = Histogram(
            "pulse_delivery_seconds", "Duration of delivery attempts", ["channel_type"], buckets=DURATION_BUCKETS, registry=self.registry
        )
        self.registry.register(OpenCircuits(admission))

    def observe(self, record: AttemptRecord) -> None:
        """Count one finished attempt."""
        channel_type = record.channel_type or "unknown"
        outcome = "delivered" if record.success else "retry" if record.will_retry else "failed"
        self._attempts.labels(channel_type, outcome).inc()
        self._seconds.labels(channel_type).observe(record.duration_ms / 1000)

    def serve(self, port: int) -> bool:
        """Serve /metrics on 127.0.0.1:`port` (0: not at all); False if the port is taken."""
        if not port:
            return False
        try:
            start_http_server(port, addr="127.0.0.1", registry=self.registry)
        except OSError as exc:
            # Another worker on this host holds it: give each worker its own WORKER_METRICS_PORT.
            log.warning("worker metrics not served on 127.0.0.1:%d: %s", port, exc.strerror or exc)
            return False
        log.info("worker metrics on http://127.0.0.1:%d/metrics", port)
        return True
