"""The web process's shared resources, kept on the Flask app (no globals, no import-time config)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from flask import Flask, current_app

from app.config import Settings
from app.db import Database
from app.dispatch import CeleryEnqueuer
from app.events import EventPublisher
from app.secrets import SecretBox


@dataclass
class PulseState:
    """Settings, database, secret box, Celery client and event publisher of one process."""

    settings: Settings
    db: Database

    @cached_property
    def box(self) -> SecretBox:
        return SecretBox(self.settings.secret_key)

    @cached_property
    def celery(self):
        """A Celery client that only sends messages; the worker owns the tasks."""
        from celery import Celery

        client = Celery("pulse-web", set_as_current=False)
        client.config_from_object("celeryconfig", force=True)
        # Celery lets the CELERY_BROKER_URL variable win over broker_url; the write URL is
        # what a sender uses, so this app's own settings decide where its messages go.
        client.conf.broker_write_url = self.settings.broker_url
        return client

    @cached_property
    def enqueuer(self) -> CeleryEnqueuer:
        return CeleryEnqueuer(self.celery)

    @cached_property
    def events(self) -> EventPublisher:
        return EventPublisher(self.settings.redis_url)


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions["pulse"] = PulseState(settings=settings, db=Database(settings.database_url))
    app.config["SECRET_KEY"] = settings.secret_key


def pulse() -> PulseState:
    """The current app's state."""
    return current_app.extensions["pulse"]
