"""Per-process resources of a worker: settings, database, secret box, enqueuer.

Created lazily on first use and dropped after a fork, so a prefork child never shares its
parent's database connections (the threads pool simply shares one set).
"""

from __future__ import annotations

import os
import threading
from functools import cached_property

from celery.signals import worker_process_init, worker_process_shutdown, worker_shutdown

from app.config import Settings
from app.db import Database
from app.dispatch import CeleryEnqueuer
from app.events import EventPublisher
from app.secrets import SecretBox


class Runtime:
    """What the tasks of one worker process share."""

    @cached_property
    def settings(self) -> Settings:
        return Settings.from_env()

    @cached_property
    def db(self) -> Database:
        return Database(self.settings.database_url)

    @cached_property
    def box(self) -> SecretBox:
        return SecretBox(self.settings.secret_key)

    @cached_property
    def events(self) -> EventPublisher:
        return EventPublisher(self.settings.redis_url)

    def enqueuer(self, celery_app) -> CeleryEnqueuer:
        return CeleryEnqueuer(celery_app)


_lock = threading.Lock()
_runtime: Runtime | None = None
_pid = os.getpid()


def runtime() -> Runtime:
    """This process's runtime (a new one in a forked child)."""
    global _runtime, _pid
    with _lock:
        if _runtime is None or _pid != os.getpid():
            _runtime, _pid = Runtime(), os.getpid()
        return _runtime


@worker_process_init.connect
def _reset_after_fork(**_kwargs) -> None:
    global _runtime
    with _lock:
        _runtime = None


@worker_process_shutdown.connect
@worker_shutdown.connect
def _close_connections(**_kwargs) -> None:
    # Say goodbye to MQTT brokers instead of letting them time the connections out.
    from app.channels.mqtt import close_pool

    close_pool()
