"""The web process's hold on its `Services`: kept on the Flask app, reached with `pulse()`."""

from __future__ import annotations

from flask import Flask, current_app

from app.services import Services


def init_app(app: Flask, services: Services) -> None:
    app.extensions["pulse"] = services
    app.config["SECRET_KEY"] = services.settings.secret_key


def pulse() -> Services:
    """The current Flask app's services."""
    return current_app.extensions["pulse"]
