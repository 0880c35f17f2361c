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

from celery import Celery, bootsteps
from kombu.common import ignore_errors

from app import broker
from app.config import Settings
from app.services import Services

# Imported now, not when Celery first configures the app: the celery command line puts the
# project directory on sys.path only while it imports `-A tasks`, and a failed import inside
# Celery's on_configure signal is swallowed, leaving Celery's defaults (amqp://localhost).
from celeryconfig import celery_config

# How long a worker gathers its task events before it sends them, as one message.
TASK_EVENTS_BATCH_SECONDS = 0.1


class BatchedTaskEvents(bootsteps.StartStopStep):
    """A worker's task events go out in batches gathered for a moment, not one message each.

    Task events are on while someone watches (Flower switches them on). Celery buffers them,
    but flushes its buffer on the event loop's next turn, which under load meant one message
    per event, three per delivery: 15% of the worker's CPU under `make run` (py-spy). Here the
    first buffered event schedules the flush TASK_EVENTS_BATCH_SECONDS later, and the events
    of that moment go together (Celery still flushes at once at 24 buffered events). Flower
    shows a task at most that much later.
    """

    requires = ("celery.worker.consumer.events:Events",)

    def __init__(self, c, **kwargs):
        super().__init__(c, **kwargs)
        self._lock = threading.Lock()
        self._scheduled = False

    def start(self, c):
        # The Events step makes a new dispatcher each time the consumer (re)connects.
        dispatcher, hub = c.event_dispatcher, c.hub
        if dispatcher is None or hub is None:
            return
        with self._lock:
            self._scheduled = False  # a timer of the last connection's loop may be gone

        def flush() -> None:
            with self._lock:
                self._scheduled = False
            dispatcher.flush()

        def buffered() -> None:
            # Called from the pool's threads: the timer is set on the event loop's own thread.
            with self._lock:
                if self._scheduled:
                    return
                self._scheduled = True
            hub.call_soon(hub.call_later, TASK_EVENTS_BATCH_SECONDS, flush)

        dispatcher.on_send_buffered = buffered

    def stop(self, c):
        # Before the Events step closes the dispatcher: the last moment's events still go.
        if c.event_dispatcher is not None:
            ignore_errors(c, c.event_dispatcher.flush)

    shutdown = stop


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
    app = PulseCelery(settings)
    app.steps["consumer"].add(BatchedTaskEvents)
    return app
