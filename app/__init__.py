"""Pulse: alert delivery for a multi-tenant IoT platform. `create_app()` builds the web process."""

from __future__ import annotations

from typing import Any

from flask import Flask

from app.config import Settings
from app.logs import configure_logging

MAX_BODY_BYTES = 1024 * 1024


def create_app(settings: Settings | None = None, test_config: dict[str, Any] | None = None) -> Flask:
    """The Flask application: REST API, WebSocket, web UI, health and metrics."""
    from app import acknowledge, api, cli, health, problems, rate_limits, telemetry, ui, web
    from app.live import ws
    from app.services import Services

    settings = settings or Settings.from_env()
    configure_logging(settings.log_format)
    app = Flask(__name__, instance_relative_config=False)
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES, JSON_SORT_KEYS=False)
    if test_config:
        app.config.update(test_config)
    services = Services(settings)
    web.init_app(app, services)
    services.db.warn_if_rls_bypassed("the web process")
    telemetry.init_app(app)
    problems.init_app(app)
    ws.init_app(app)
    api.init_app(app)
    rate_limits.init_app(app, settings)
    health.init_app(app)
    ui.init_app(app)
    acknowledge.init_app(app)
    cli.init_app(app)
    return app
