"""The Celery application: `celery -A tasks worker|beat|flower`.

Tasks are thin: they take ids and call the domain code in `app/`.
"""

from __future__ import annotations

from celery import Celery

celery = Celery("pulse")
celery.config_from_object("celeryconfig")
celery.autodiscover_tasks(["tasks"], related_name=None)

from tasks import delivery, maintenance  # noqa: E402,F401  (registers the tasks)

app = celery
