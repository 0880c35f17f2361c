"""`make_celery(settings)`: the Celery application, configured inside a factory.

The same factory serves the worker, beat and flower (`tasks/__init__.py`, where the tasks are
registered) and the web process (which only sends messages). With no settings given, the
environment is read when Celery first needs its configuration, never when a module is
imported. Each process reaches its `Services` through `celery.services`, made again in a
forked child so that no two processes share a database or Redis connection.
"""

from __future__ import annotations

import os
import threading

from celery import Celery

from app import broker
from app.config import Settings
from app.services import Services

# Imported now, not when Celery first configures the app: the celery command line puts the
# project directory on sys.path only while it imports `-A tasks`, and a failed import inside
# Celery's on_configure signal is swallowed, leaving Celery's defaults (amqp://localhost).
from celeryconfig import celery_config


class PulseCelery(Celery):
    """A Celery application that knows Pulse's settings and the services built from them."""

    def __init__(self, settings: Settings | None = None, *, services: Services | None = None, **options):
        broker.install()
        super().__init__("pulse", set_as_current=False, **options)
        self._pulse_settings = settings
        self._services = services
        self._services_pid = os.getpid() if services is not None else None
        self._services_lock = threading.Lock()
        self.on_configure.connect(self._configure, weak=False)

    @property
    def settings(self) -> Settings:
        """Pulse's settings: as given, or read from the environment on first use."""
        if self._pulse_settings is None:
            self._pulse_settings = Settings.from_env()
        return self._pulse_settings

    @property
    def services(self) -> Services:
        """This process's services (new ones in a forked child)."""
        with self._services_lock:
            if self._services is None or self._services_pid != os.getpid():
                self._services, self._services_pid = Services(self.settings, celery=self), os.getpid()
            return self._services

    def _configure(self, sender, **_kwargs) -> None:
        sender.config_from_object(celery_config(self.settings))


def make_celery(settings: Settings | None = None) -> PulseCelery:
    """The Celery application for `settings` (or for the environment, read when first needed)."""
    return PulseCelery(settings)
