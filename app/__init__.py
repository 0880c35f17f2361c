"""Pulse: alert delivery for a multi-tenant IoT platform. `create_app()` builds the web process."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from app.config import Settings

MAX_BODY_BYTES = 1024 * 1024


def create_app(settings: Settings | None = None, test_config: dict[str, Any] | None = None) -> Flask:
    """The Flask application: REST API, WebSocket, web UI, health and metrics."""
    from app import api, cli, health, live, problems, state, telemetry, ui, ws

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = Flask(__name__, instance_relative_config=False)
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES, JSON_SORT_KEYS=False)
    if test_config:
        app.config.update(test_config)
    state.init_app(app, settings or Settings.from_env())
    telemetry.init_app(app)
    live.init_app(app)
    problems.init_app(app)
    ws.init_app(app)
    api.init_app(app)
    health.init_app(app)
    ui.init_app(app)
    cli.init_app(app)
    return app
