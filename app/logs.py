"""Log lines of every Pulse process, through the standard `logging` module.

In production each line is one JSON object (`PULSE_LOG_FORMAT=json`, the default): the time,
level, logger and message, plus whatever the call site passed in `extra` (`job_id`,
`alert_id`, `tenant_id`, `channel_type`...), so a log pipeline can follow one delivery
across processes. `make run` writes human-readable lines instead (`PULSE_LOG_FORMAT=text`).
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The attributes a JSON line carries under these names when the record has them.
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(log_format: str = "json", level: int | str = logging.INFO) -> None:
    """Send this process's log records to standard error, one line each, in `log_format`."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "text":
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    else:
        handler.setFormatter(
            JsonFormatter(JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})
        )
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
