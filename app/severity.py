"""Alert severity: an integer 0..5, the names accepted on input, and the one ladder of levels.

Every place that treats severities differently reads the same table, `LEVELS`: the label of
DESIGN §6, the delivery queue, and the colour the chat channels show. A channel that speaks
its own vocabulary (PagerDuty's four severities, Adaptive Cards' named colours) maps a level's
label or colour to it; it never draws a ladder of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

SEVERITY_NAMES = {"info": 1, "low": 1, "medium": 2, "warning": 2, "high": 3, "critical": 4}


@dataclass(frozen=True)
class Level:
    """A rung of the ladder: how Pulse labels, queues and colours severities from `floor` up."""

    floor: int
    label: str
    # Critical alerts never wait behind a backlog of minor ones (DESIGN §5).
    queue: str
    # The seeds' palette: red for critical, orange for high, blue for the rest.
    colour: str


# Highest first: a severity belongs to the first level whose floor it reaches.
LEVELS = (
    Level(4, "CRITICAL", "pulse.critical", "#e94560"),
    Level(3, "HIGH", "pulse.high", "#ff9800"),
    Level(2, "MEDIUM", "pulse.default", "#2196f3"),
    Level(0, "LOW", "pulse.default", "#2196f3"),
)

# The delivery queues, most urgent first: the order a worker must be given them in.
QUEUES = tuple(dict.fromkeys(level.queue for level in LEVELS))


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


def level_of(severity: int) -> Level:
    """The level a severity belongs to (anything below 0 is LOW)."""
    return next((level for level in LEVELS if severity >= level.floor), LEVELS[-1])


def severity_label(severity: int) -> str:
    """CRITICAL (>= 4), HIGH (3), MEDIUM (2), LOW otherwise."""
    return level_of(severity).label


def queue_for(severity: int) -> str:
    """The Celery queue of a delivery: critical alerts never wait behind minor ones."""
    return level_of(severity).queue
