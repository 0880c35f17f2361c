"""The web process's hold on its `Services`: kept on the Flask app, reached with `pulse()`."""

from __future__ import annotations

from flask import Flask, current_app

from app.services import Services


def init_app(app: Flask, services: Services) -> None:
    app.extensions["pulse"] = services
    # Flask is not given SECRET_KEY: Pulse keeps nothing in Flask's cookie session (API and
    # console clients carry bearer tokens), and with a key Flask opens and signs a session on
    # every request, 25 us each.


def pulse() -> Services:
    """The current Flask app's services."""
    return current_app.extensions["pulse"]
