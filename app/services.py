"""The composition root: what one process shares, built from `Settings` and nothing else.

`Services` is Flask-free and Celery-task-free. The web process keeps one on the Flask app
(`create_app()`), and every Celery process gets one from its Celery application
(`app.celery_app.PulseCelery.services`), so both wire the same database, secret box, broker
client, live-event publisher and Redis connection the same way. Every member is made on
first use: a process pays only for what it touches.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import redis

from app.acklinks import AckLinks
from app.auth import VerifiedTokens
from app.config import Settings
from app.db import Database
from app.delivery.admission import ChannelAdmission
from app.delivery.metrics import DeliveryMetrics
from app.delivery.outbox import OutcomeOutbox
from app.delivery.policy import claim_lease
from app.delivery.service import ChannelConfigs, Deliveries
from app.delivery.sweep import Sweeper, Watermarks
from app.dispatch import CeleryEnqueuer, Dispatcher
from app.events import EventPublisher
from app.maintenance import sweep_grace
from app.oncall import OnCallSweep
from app.passwords import PasswordHasher
from app.secrets import SecretBox
from app.tenants import KnownTenants

if TYPE_CHECKING:
    from celery import Celery


class Services:
    """Settings, database, secret box, Celery client, event publisher and Redis of one process."""

    def __init__(self, settings: Settings, celery: Celery | None = None):
        self.settings = settings
        # A Celery process passes its own application; the web process makes a client.
        self._celery = celery

    @cached_property
    def db(self) -> Database:
        return Database(self.settings.database_url, prepared_statements=self.settings.prepared_statements)

    @cached_property
    def tenants(self) -> KnownTenants:
        """Which tenants exist: a token naming any other is refused."""
        return KnownTenants(self.db)

    @cached_property
    def tokens(self) -> VerifiedTokens:
        """The bearer tokens this process has verified lately."""
        return VerifiedTokens(self.settings)

    @cached_property
    def passwords(self) -> PasswordHasher:
        """Password checks off the event loop, `password_threads` at a time."""
        return PasswordHasher(self.settings.password_threads)

    @cached_property
    def box(self) -> SecretBox:
        return SecretBox(self.settings.secret_key)

    @property
    def celery(self) -> Celery:
        """The Celery application messages are sent through, configured from these settings."""
        if self._celery is None:
            from app.celery_app import PulseCelery

            self._celery = PulseCelery(self.settings, services=self)
        return self._celery

    @cached_property
    def enqueuer(self) -> CeleryEnqueuer:
        return CeleryEnqueuer(self.celery)

    @cached_property
    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self.db, self.enqueuer)

    @cached_property
    def admission(self) -> ChannelAdmission:
        return ChannelAdmission(self.redis, self.settings.delivery, claim_lease(self.settings.delivery).total_seconds())

    @cached_property
    def deliveries(self) -> Deliveries:
        """The delivery workflow (a worker's task and results hook)."""
        return Deliveries(
            self.db,
            self.settings.delivery,
            self.admission,
            self.dispatcher,
            OutcomeOutbox(self.redis),
            ChannelConfigs(self.box),
            self.delivery_metrics,
            self.ack_links,
        )

    @cached_property
    def ack_links(self) -> AckLinks:
        """Signs and checks the acknowledge links of notifications (on PUBLIC_URL)."""
        return AckLinks(self.settings.secret_key, self.settings.public_url)

    @cached_property
    def delivery_metrics(self) -> DeliveryMetrics:
        """What a worker counts of its attempts and serves on WORKER_METRICS_PORT."""
        return DeliveryMetrics(self.admission)

    @cached_property
    def watermarks(self) -> Watermarks:
        return Watermarks(self.redis)

    @cached_property
    def sweeper(self) -> Sweeper:
        """The beat's sweep of the jobs table."""
        return Sweeper(
            self.db,
            self.settings.delivery,
            sweep_grace(self.settings),
            self.admission,
            self.dispatcher,
            OutcomeOutbox(self.redis),
            self.watermarks,
        )

    @cached_property
    def on_call(self) -> OnCallSweep:
        """The beat's pass over ended silences and due escalations."""
        return OnCallSweep(self.db, self.settings.delivery, self.dispatcher, self.events)

    @cached_property
    def events(self) -> EventPublisher:
        return EventPublisher(self.settings.redis_url)

    @cached_property
    def redis(self) -> redis.Redis:
        """The Redis of `REDIS_URL`: live events, rate limits, circuits and bulkheads."""
        return redis.Redis.from_url(self.settings.redis_url, socket_connect_timeout=2, socket_timeout=5)

    def warm(self) -> None:
        """Make now what the first alert would otherwise make while it waits: the Celery client.

        Importing and configuring Celery took 250 ms in a web worker (gevent), and nothing
        else runs meanwhile: every request of the first moments would wait for it. Nothing
        here connects, so a broker that is down does not stop a start.
        """
        celery = self.celery
        celery.backend  # noqa: B018 (configured on first use: the result backend, even a disabled one)
        celery.amqp.producer_pool  # noqa: B018
        self.dispatcher  # noqa: B018

    def close(self) -> None:
        """Release pooled connections (database, Redis); members are made again on next use."""
        for name in ("db", "redis"):
            member = self.__dict__.pop(name, None)
            if member is not None:
                member.dispose() if name == "db" else member.close()
