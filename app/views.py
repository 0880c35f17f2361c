"""The resources as the API answers them and the live feed pushes them (DESIGN §4, §6).

Each view is a pydantic model read from its row (`from_attributes`), keyed as in the data
model and never wrapped; the OpenAPI description's response schemas are generated from the
same models. Times are ISO 8601 with a UTC offset (`+00:00`), `http` channels come back as
`webhook`, and secrets come back masked. `View.of(row, name=value)` adds to a row what it
does not hold itself (`jobs_queued`, a delivery's `log`, a channel's masked `config`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    computed_field,
    model_validator,
)

from app.channels import SENDERS, canonical_type, get_sender
from app.delivery.admission import Health
from app.models import NotificationChannel
from app.payload import iso
from app.secrets import SecretBox, masked
from app.severity import severity_label
from app.status import UNSETTLED_JOB_STATUSES, AlertStatus, Event, JobStatus

Time = Annotated[
    datetime,
    PlainSerializer(iso, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
ChannelType = Annotated[
    str,
    AfterValidator(canonical_type),
    WithJsonSchema({"type": "string", "enum": sorted(SENDERS)}),
]
Metrics = dict[str, int | float]


def _or_empty(value: Any) -> Any:
    return value or {}


class ViewError(RuntimeError):
    """A row its view cannot describe: a bug (answered 500 and logged), never the caller's fault."""


class _With:
    """`source` with some attributes given: a row plus what its view adds to it."""

    def __init__(self, source: Any, values: dict[str, Any]):
        self._source = source
        self._values = values

    def __getattr__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        return getattr(self._source, name)


class View(BaseModel):
    """A resource as answered: read from a row's attributes."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, source: Any, **values: Any) -> Self:
        """The view of `source` (a row, or any object with the attributes), `values` added or overriding."""
        try:
            return cls.model_validate(_With(source, values) if values else source)
        except ValidationError as exc:
            raise ViewError(f"{cls.__name__} cannot describe {type(source).__name__}: {exc}") from exc


class DeviceView(View):
    device_id: str
    tenant_id: str
    site_id: str | None
    tags: Annotated[dict[str, Any], BeforeValidator(_or_empty)]
    created_at: Time


class AlertView(View):
    alert_id: int
    tenant_id: str
    device_id: str
    site_id: str | None
    alert_type: str
    severity: int
    message: str
    details: dict[str, Any]
    fingerprint: str
    status: AlertStatus
    triggered_at: Time
    acknowledged_at: Time | None
    acknowledged_by: str | None
    closed_at: Time | None
    closed_by: str | None

    @computed_field
    @property
    def severity_label(self) -> str:
        return severity_label(self.severity)


class AlertWithJobs(AlertView):
    """The answer to an alert's open, acknowledge or close: the alert and how many jobs will be sent."""

    jobs_queued: int


class HealthView(View):
    """A channel's circuit breaker (DESIGN §5a): closed unless its receiver keeps failing."""

    state: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    open_until: Time | None
    last_error: str | None
    last_success_at: Time | None
    last_failure_at: Time | None


class ChannelView(View):
    channel_id: int
    tenant_id: str
    name: str
    channel_type: ChannelType
    config: dict[str, Any]
    is_enabled: bool
    health: HealthView
    created_at: Time
    updated_at: Time


def channel_view(channel: NotificationChannel, box: SecretBox, health: Health | None = None) -> ChannelView:
    """A channel as answered: each secret that is set shows as the mask, unset ones as null."""
    secrets = box.decrypt(channel.encrypted_secrets)
    config = masked(channel.config or {}, secrets, get_sender(channel.channel_type).secret_fields)
    return ChannelView.of(channel, config=config, health=HealthView.of(health or Health()))


class EscalationStepView(View):
    after_seconds: int
    channel_ids: list[int]


class RecurrenceView(View):
    rrule: str
    duration_seconds: int
    timezone: str


class RuleView(View):
    rule_id: int
    tenant_id: str
    channel_id: int
    min_severity: int | None
    alert_type: str | None
    device_tag_key: str | None
    device_tag_val: str | None
    site_ids: list[str] | None
    device_prefixes: list[str] | None
    deliver_on: list[Event]
    throttle_minutes: int
    priority: int
    is_enabled: bool
    escalation: list[EscalationStepView] | None
    created_at: Time


class SilenceView(View):
    """A silence or maintenance window; `active` says whether it holds now."""

    silence_id: int
    tenant_id: str
    name: str
    comment: str | None
    matchers: dict[str, Any]
    channel_ids: list[int] | None
    starts_at: Time
    ends_at: Time | None
    recurrence: RecurrenceView | None
    notify_on_end: bool
    created_by: str | None
    created_at: Time
    active: bool


class RuleExplained(BaseModel):
    """One rule's outcome for the explained alert event (DESIGN §6a)."""

    rule_id: int
    channel_id: int
    outcome: Literal["send", "throttled", "suppressed", "no_match", "rule_disabled", "channel_disabled", "shadowed"]
    failed: list[str]
    silence_id: int | None


class Explanation(BaseModel):
    """What posting the alert would do now: every rule in dispatch order, and the channels sent to."""

    event_type: Event
    rules: list[RuleExplained]
    channels: list[int]


class JobView(View):
    job_id: int
    tenant_id: str
    alert_id: int
    channel_id: int
    rule_id: int | None
    event_type: Event
    escalation_step: int
    status: JobStatus
    attempts: int
    next_attempt_at: Time | None
    last_error: str | None
    payload: dict[str, Any]
    created_at: Time
    delivered_at: Time | None

    @model_validator(mode="after")
    def _as_sent(self) -> Self:
        # The payload was stored before the job had its id; what a channel is sent carries it.
        self.payload = {**self.payload, "job_id": self.job_id}
        # Only a job still to be sent has a next attempt.
        if self.status not in UNSETTLED_JOB_STATUSES:
            self.next_attempt_at = None
        return self


class AttemptView(View):
    """One attempt of a delivery: a delivery_log row."""

    id: int
    job_id: int
    attempt: int
    success: bool
    status_code: int | None
    error: str | None
    duration_ms: float | None
    created_at: Time


class DeliveryView(JobView):
    """A job with its `log`: one row per attempt, in order."""

    log: list[AttemptView]


class ReadingView(View):
    """One telemetry reading, as `Reading.view()` shapes it for the live feed too."""

    timestamp: Time
    metrics: Metrics


class IngestedReading(ReadingView):
    device_id: str


Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    """A list, newest first: `next_cursor` continues it, null on the last page."""

    items: list[Item]
    next_cursor: str | None


class Token(BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int


class ChannelTestResult(BaseModel):
    """A test notification the receiver took: how long it took and what it answered."""

    status: Literal["ok"]
    duration_ms: float
    status_code: int | None
    message_id: str


class Replayed(BaseModel):
    replayed: int


class WouldReplay(BaseModel):
    would_replay: int
