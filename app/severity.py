"""Alert severity: an integer 0..5, the names accepted on input, labels and delivery queues."""

from __future__ import annotations

SEVERITY_NAMES = {"info": 1, "low": 1, "medium": 2, "warning": 2, "high": 3, "critical": 4}

# The delivery queues, most urgent first: the order a worker must be given them in.
QUEUES = ("pulse.critical", "pulse.high", "pulse.default")


def parse_severity(value: object) -> int:
    """An int 0..5 or an accepted name; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("severity must be an integer 0..5 or a severity name")
    if isinstance(value, str):
        name = value.strip().lower()
        if name in SEVERITY_NAMES:
            return SEVERITY_NAMES[name]
        raise ValueError(f"unknown severity name {value!r}; use 0..5 or one of {', '.join(SEVERITY_NAMES)}")
    if isinstance(value, int) and 0 <= value <= 5:
        return value
    raise ValueError("severity must be an integer 0..5 or a severity name")


def severity_label(severity: int) -> str:
    """CRITICAL (>= 4), HIGH (3), MEDIUM (2), LOW otherwise."""
    if severity >= 4:
        return "CRITICAL"
    if severity == 3:
        return "HIGH"
    if severity == 2:
        return "MEDIUM"
    return "LOW"


def queue_for(severity: int) -> str:
    """The Celery queue of a delivery: critical alerts never wait behind minor ones."""
    if severity >= 4:
        return "pulse.critical"
    if severity == 3:
        return "pulse.high"
    return "pulse.default"
