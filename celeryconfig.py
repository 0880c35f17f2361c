"""Celery settings (DESIGN §3, §5), derived from Pulse's settings when the app is configured."""

from __future__ import annotations

from typing import Any

from app.config import Settings, instance_dir
from app.severity import QUEUES


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration of one Pulse process."""
    return {
        "broker_url": settings.broker_url,
        # Celery lets a CELERY_BROKER_URL variable win over broker_url, unconverted (a
        # `unix://` Redis URL would reach kombu as is); the read and write URLs win over both,
        # so Pulse's own settings decide where messages go.
        "broker_read_url": settings.broker_url,
        "broker_write_url": settings.broker_url,
        # Deliveries record their outcome in the database (the results hook), not in a result backend.
        "task_ignore_result": True,
        "result_backend": None,
        # At-least-once: a message is acknowledged only after its task finished, and a worker
        # that stops puts back the messages it holds. What a killed worker held, the sweeper
        # sends again (see ack_emulation below).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": QUEUES[-1],
        "task_create_missing_queues": True,
        "broker_transport_options": {
            # No copy of each message in Redis while a worker holds it (kombu's emulation of
            # AMQP acknowledgements: two Redis transactions per message, a seventh of a
            # worker's CPU). The database is the source of truth: a job whose worker died
            # mid-attempt goes round again when its lease expires, and a message lost with its
            # worker is found by the sweeper's queue watermarks (app/delivery/sweep.py). A
            # worker that stops cleanly still puts back the messages it had not run.
            "ack_emulation": False,
            # Critical first: the worker asks the queues in the order it was given them.
            "queue_order_strategy": "priority",
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
        },
        # Publishing must fail fast when the broker is down: the API answers anyway, the
        # sweeper resends.
        "broker_connection_timeout": 2,
        "broker_connection_retry_on_startup": True,
        "task_publish_retry": False,
        "task_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        "worker_hijack_root_logger": False,
        # Task events cost three extra broker messages per delivery. They stay off unless
        # someone watches: Flower switches them on in the workers while it runs.
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "beat_schedule": {
            "sweep-lost-jobs": {"task": "pulse.sweep_lost_jobs", "schedule": float(settings.sweep_interval_seconds)},
            "sweep-on-call": {"task": "pulse.sweep_on_call", "schedule": float(settings.sweep_interval_seconds)},
            "purge-old-records": {"task": "pulse.purge_old_records", "schedule": 3600.0},
        },
        "beat_schedule_filename": str(instance_dir() / "celerybeat-schedule"),
    }
