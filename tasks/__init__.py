"""The Celery application: `celery -A tasks worker|beat|flower`.

Tasks are thin: they take ids and call the domain code in `app/`, through the services of
their process (`celery.services`). The application reads its settings from the environment
when Celery first needs them, not at import.
"""

from __future__ import annotations

import logging

from celery.signals import (
    beat_init,
    celeryd_init,
    setup_logging,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from app.celery_app import make_celery
from app.cpu_priority import lower_priority
from app.logs import configure_logging

celery = make_celery()
app = celery

from tasks import delivery, maintenance  # noqa: E402,F401  (registers the tasks)

# Celery's two lines per task ("received", "succeeded in"), which say less than the
# delivery log and Pulse's own lines about a failed attempt: 4% of a worker's CPU at INFO
# (profiled under bench/compare.py). `--loglevel DEBUG` brings them back.
PER_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


@setup_logging.connect
def _configure_logging(loglevel=None, **_kwargs) -> None:
    # Connected, this replaces Celery's own logging set-up: one format for every process.
    configure_logging(celery.settings.log_format, loglevel or "INFO")
    quiet = logging.getLogger().getEffectiveLevel() > logging.DEBUG
    for name in PER_TASK_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)


# What _lower_priority lowered, logged once logging is set up.
_lowered: list[str] = []


@celeryd_init.connect
def _lower_priority(**_kwargs) -> None:
    # Before the pool starts its threads, which inherit it (app.cpu_priority).
    _lowered[:] = lower_priority(celery.settings.worker_nice)


@worker_ready.connect
def _report_priority(**_kwargs) -> None:
    if _lowered:
        logging.getLogger(__name__).info(
            "CPU priority lowered by %d (%s): the API goes first when the machine is busy",
            celery.settings.worker_nice, ", ".join(_lowered),
        )


@worker_ready.connect
def _serve_metrics(**_kwargs) -> None:
    celery.services.db.warn_if_rls_bypassed("the worker")
    celery.services.delivery_metrics.serve(celery.settings.worker_metrics_port)


@beat_init.connect
def _check_database_role(**_kwargs) -> None:
    celery.services.db.warn_if_rls_bypassed("the beat")


@worker_process_shutdown.connect
@worker_shutdown.connect
def _close_connections(**_kwargs) -> None:
    # Say goodbye to MQTT brokers instead of letting them time the connections out.
    from app.channels.mqtt import close_pool

    close_pool()
