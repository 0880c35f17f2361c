"""The anchor of bench/compare.py: a bare Celery webhook sender, with nothing of Pulse in it.

One task per delivery, posting the payload with `requests` (a Session per worker thread) to
the URL it is given; no database, no retries, no bookkeeping. Run by compare.py as
`celery -A bench.bare_celery worker --pool threads`, on the same broker kind, pool and
concurrency as Pulse's worker.
"""

from __future__ import annotations

import json
import os
import threading

import requests
from celery import Celery

app = Celery("bare", broker=os.environ.get("BARE_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_ignore_result=True,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
)
_local = threading.local()


@app.task(name="bare.deliver")
def deliver(url: str, payload: dict) -> None:
    """POST `payload` to `url` once."""
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    session.post(url, data=json.dumps(payload), headers={"Content-Type": "application/json", "webhook-id": payload["id"]}, timeout=10)
