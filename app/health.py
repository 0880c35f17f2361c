"""Operations endpoints outside the API: /healthz, /readyz and /metrics."""

from __future__ import annotations

import json
import logging
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from app.live.metrics import LiveFeedCollector
from app.models import NotificationJob
from app.problems import Problem
from app.status import JobStatus

log = logging.getLogger(__name__)


class JobStatusCollector:
    """Jobs per status, read from the database at scrape time: one truth for every process.

    `pulse_notification_jobs{status="FAILED"}` is the size of the dead-letter queue.
    """

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):
        gauge = GaugeMetricFamily("pulse_notification_jobs", "Notification jobs by status", labels=["status"])
        try:
            with self.app.extensions["pulse"].db.system_scope("job-metrics") as session:
                rows = session.execute(select(NotificationJob.status, func.count()).group_by(NotificationJob.status)).all()
        except Exception as exc:  # a scrape must not fail because the database is down
            log.warning("job metrics unavailable: %s", type(exc).__name__)
            rows = []
        counts = {status: 0 for status in JobStatus}
        counts.update(dict(rows))
        for status, count in counts.items():
            gauge.add_metric([status], count)
        yield gauge


def init_app(app: Flask) -> None:
    registry = CollectorRegistry()
    requests_total = Counter("pulse_http_requests", "HTTP requests answered", ["method", "endpoint", "status"], registry=registry)
    latency = Histogram("pulse_http_request_seconds", "HTTP request latency", ["endpoint"], registry=registry)
    registry.register(JobStatusCollector(app))
    registry.register(LiveFeedCollector(lambda: app.extensions["live"]))

    @app.before_request
    def _start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response):
        endpoint = request.endpoint or "unmatched"
        requests_total.labels(request.method, endpoint, str(response.status_code)).inc()
        # A WebSocket "request" lasts as long as its connection: not a latency to chart.
        if "started" in g and endpoint != "live.feed":
            latency.labels(endpoint).observe(time.perf_counter() - g.started)
        return response

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz():
        state = app.extensions["pulse"]
        checks = {}
        try:
            state.db.ping()
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unavailable: {type(exc).__name__}"
        try:
            with state.celery.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
            checks["broker"] = "ok"
        except Exception as exc:
            checks["broker"] = f"unavailable: {type(exc).__name__}"
        if any(value != "ok" for value in checks.values()):
            problem = Problem(503, "not ready: " + ", ".join(f"{k} {v}" for k, v in checks.items() if v != "ok"))
            body = {**problem.body(), "checks": checks}
            return Response(json.dumps(body), status=503, mimetype="application/problem+json")
        return {"status": "ready", "checks": checks}

    @app.get("/metrics")
    def metrics():
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
