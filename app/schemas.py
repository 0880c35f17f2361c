"""Request bodies of the REST API, validated with pydantic (unknown fields are errors)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
)

from app.severity import parse_severity
from app.status import LIFECYCLE_EVENTS, Event

Identifier = Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=r"^[^\s/]+$")]
Name = Annotated[StrictStr, Field(min_length=1, max_length=200)]


def _severity(value: Any) -> int:
    return parse_severity(value)


Severity = Annotated[int, BeforeValidator(_severity)]


def _utc(value: datetime) -> datetime:
    # A time without an offset is UTC; one with an offset PostgreSQL cannot store (beyond
    # +-15:59) or that leaves the calendar once moved to UTC is refused here, not by the database.
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("the time is out of range") from None


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
TagValue = StrictStr | StrictInt | float | StrictBool


def _events(value: list[str]) -> list[str]:
    unknown = [v for v in value if v not in LIFECYCLE_EVENTS]
    if unknown:
        raise ValueError(f"unknown event(s) {unknown}; use {', '.join(LIFECYCLE_EVENTS)}")
    if not value:
        raise ValueError("at least one event is needed")
    return list(dict.fromkeys(value))


# DESIGN §6: an alert's `details` is at most 64 KiB of JSON. It is stored once per event and
# copied into every notification, so one tenant's huge details cannot swell everybody's queue.
MAX_DETAILS_BYTES = 64 * 1024


def _details_size(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None:
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        if size > MAX_DETAILS_BYTES:
            raise ValueError(f"is {size} bytes of JSON; at most {MAX_DETAILS_BYTES} (64 KiB) are allowed")
    return value


Details = Annotated[dict[str, Any] | None, AfterValidator(_details_size)]


# The rule filters' types, shared by alerts, rules and explain.
AlertType = Annotated[StrictStr, Field(min_length=1, max_length=128)]
TagKey = Annotated[StrictStr, Field(min_length=1, max_length=128)]
TagFilterValue = Annotated[StrictStr, Field(max_length=256)]
DevicePrefix = Annotated[StrictStr, Field(min_length=1, max_length=128)]
DeliverOn = Annotated[list[StrictStr], AfterValidator(_events)]
ThrottleMinutes = Annotated[StrictInt, Field(ge=0, le=10_080)]
Priority = Annotated[StrictInt, Field(ge=0, le=1_000_000)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TokenRequest(Body):
    email: Annotated[StrictStr, Field(min_length=3, max_length=254)]
    password: Annotated[StrictStr, Field(min_length=1, max_length=1024)]


class DeviceCreate(Body):
    device_id: Identifier
    site_id: Identifier | None = None
    tags: dict[Annotated[str, Field(max_length=128)], TagValue] = Field(default_factory=dict)


class DeviceUpdate(Body):
    site_id: Identifier | None = None
    tags: dict[Annotated[str, Field(max_length=128)], TagValue] | None = None


class AlertCreate(Body):
    device_id: Identifier
    alert_type: AlertType
    severity: Severity
    message: Annotated[StrictStr, Field(max_length=10_000)]
    details: Details = None
    site_id: Identifier | None = None
    fingerprint: Annotated[StrictStr, Field(min_length=1, max_length=255)] | None = None


class ChannelCreate(Body):
    name: Name
    channel_type: StrictStr
    config: dict[str, Any]
    is_enabled: StrictBool = True


class ChannelUpdate(Body):
    name: Name | None = None
    config: dict[str, Any] | None = None
    is_enabled: StrictBool | None = None


class EscalationStep(Body):
    """One escalation step: after this long still OPEN, notify these channels too."""

    after_seconds: Annotated[StrictInt, Field(ge=1, le=30 * 86400)]
    channel_ids: Annotated[list[StrictInt], Field(min_length=1, max_length=50)]


def _increasing(steps: list[EscalationStep] | None) -> list[EscalationStep] | None:
    if steps:
        delays = [step.after_seconds for step in steps]
        if any(later <= earlier for earlier, later in zip(delays, delays[1:])):
            raise ValueError("after_seconds must increase strictly from step to step")
    return steps


Escalation = Annotated[list[EscalationStep], Field(max_length=20), AfterValidator(_increasing)]


class RuleFields(Body):
    min_severity: Severity | None = None
    alert_type: AlertType | None = None
    device_tag_key: TagKey | None = None
    device_tag_val: TagFilterValue | None = None
    site_ids: list[Identifier] | None = None
    device_prefixes: list[DevicePrefix] | None = None
    deliver_on: DeliverOn = Field(default_factory=lambda: [Event.OPEN])
    throttle_minutes: ThrottleMinutes = 0
    priority: Priority = 100
    is_enabled: StrictBool = True
    escalation: Escalation | None = None


class RuleCreate(RuleFields):
    channel_id: StrictInt


class RuleUpdate(Body):
    channel_id: StrictInt | None = None
    min_severity: Severity | None = None
    alert_type: AlertType | None = None
    device_tag_key: TagKey | None = None
    device_tag_val: TagFilterValue | None = None
    site_ids: list[Identifier] | None = None
    device_prefixes: list[DevicePrefix] | None = None
    deliver_on: DeliverOn | None = None
    throttle_minutes: ThrottleMinutes | None = None
    priority: Priority | None = None
    is_enabled: StrictBool | None = None
    escalation: Escalation | None = None


class BulkReplay(Body):
    channel_id: StrictInt | None = None
    since: UtcDatetime | None = None
    dry_run: StrictBool = False


class TelemetryIn(Body):
    timestamp: UtcDatetime | None = None
    metrics: dict[Annotated[str, Field(min_length=1, max_length=128)], StrictInt | float]


class SilenceMatchers(Body):
    """What a silence matches: the rule filters' keys and semantics, plus `max_severity`."""

    site_ids: list[Identifier] | None = None
    device_prefixes: list[DevicePrefix] | None = None
    device_tag_key: TagKey | None = None
    device_tag_val: TagFilterValue | None = None
    alert_type: AlertType | None = None
    min_severity: Severity | None = None
    max_severity: Severity | None = None


class Recurrence(Body):
    """A maintenance window's repetition: an RFC 5545 RRULE in an IANA time zone."""

    rrule: Annotated[StrictStr, Field(min_length=1, max_length=500)]
    duration_seconds: Annotated[StrictInt, Field(ge=1, le=31 * 86400)]
    timezone: Annotated[StrictStr, Field(min_length=1, max_length=64)]


Comment = Annotated[StrictStr, Field(max_length=10_000)]
ChannelIds = Annotated[list[StrictInt], Field(max_length=100)]


class SilenceCreate(Body):
    name: Name
    comment: Comment | None = None
    matchers: SilenceMatchers = Field(default_factory=SilenceMatchers)
    channel_ids: ChannelIds | None = None
    starts_at: UtcDatetime | None = None
    ends_at: UtcDatetime | None = None
    recurrence: Recurrence | None = None
    notify_on_end: StrictBool = True


class SilenceUpdate(Body):
    name: Name | None = None
    comment: Comment | None = None
    matchers: SilenceMatchers | None = None
    channel_ids: ChannelIds | None = None
    starts_at: UtcDatetime | None = None
    ends_at: UtcDatetime | None = None
    recurrence: Recurrence | None = None
    notify_on_end: StrictBool | None = None


class ExplainAlert(Body):
    """The alert an explain is about: what posting it would carry."""

    device_id: Identifier
    alert_type: AlertType
    severity: Severity
    site_id: Identifier | None = None
    details: dict[str, Any] | None = None


class ExplainRequest(Body):
    alert: ExplainAlert
    event_type: Annotated[StrictStr, AfterValidator(lambda value: _events([value])[0])] = Event.OPEN
