"""The sender contract every channel type implements.

A sender turns one notification into one attempt at one destination:

* `config_model` is a pydantic model of the channel's `config`. It validates the config at
  channel create/update (a bad field is a 422 naming it) and is what `send()` receives, with
  the secret fields already decrypted into it. Checks that depend on the process's settings
  (a destination URL's address, a `ca_file` inside `TRUSTED_CA_DIR`) read them from the
  validation context (`validate_config(config, settings)`, `validation_settings(info)`);
  without settings they are left to send time, where the sender checks again anyway.
* `secret_fields` are the dotted paths of the write-only fields inside that config; a path
  ending in `.*` names a mapping whose every value is secret (`secret_headers.*`). They are
  stored encrypted, answered as "********", and must never reach a log line or an error text.
* `send(config, notification, context)` makes exactly one attempt. It returns a `SendResult`
  on success, or raises `TransientError` (worth retrying, optionally with `retry_after`) or
  `PermanentError` (retrying cannot help). It never retries, sleeps, swallows an error or
  returns a failure value: the retry policy lives in one place, the Celery task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo

from app.config import DeliverySettings
from app.status import Event


class ChannelConfig(BaseModel):
    """Base of every channel config model: unknown keys are an error, not silently kept.

    A validation message never quotes the input: it may be a secret.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


def validation_settings(info: ValidationInfo) -> DeliverySettings | None:
    """The delivery settings a config is being validated against, if the caller gave them."""
    context = info.context
    return context.get("settings") if isinstance(context, dict) else None


@dataclass(frozen=True)
class Notification:
    """What is being sent: the shared payload of DESIGN §7 and the id that identifies it.

    `message_id` is the job id (or `test-<uuid>` for a test send); it is the same on every
    attempt of a job, so a receiver can drop repeats.
    """

    payload: dict[str, Any]
    message_id: str

    @property
    def event_type(self) -> str:
        return self.payload.get("event_type", Event.OPEN)


@dataclass(frozen=True)
class SendContext:
    """Process-wide settings a sender needs: timeouts, the private-address guard, endpoints."""

    settings: DeliverySettings = field(default_factory=DeliverySettings)

    @property
    def timeout(self) -> float:
        return self.settings.timeout_seconds


@dataclass(frozen=True)
class SendResult:
    """A successful attempt: the peer's status code (HTTP, SMTP...) and a short note, for the log."""

    status_code: int | None = None
    detail: str | None = None


class Sender:
    """One channel type. Subclasses set the class attributes and implement `send()`."""

    channel_type: ClassVar[str]
    config_model: ClassVar[type[ChannelConfig]]
    secret_fields: ClassVar[tuple[str, ...]] = ()

    def validate_config(self, config: dict[str, Any], settings: DeliverySettings | None = None) -> ChannelConfig:
        """Parse a full config (secrets included); raises pydantic's ValidationError.

        With `settings`, the checks that depend on them run too (see the module docstring).
        """
        context = {"settings": settings} if settings is not None else None
        return self.config_model.model_validate(config, context=context)

    def send(self, config: Any, notification: Notification, context: SendContext) -> SendResult:
        raise NotImplementedError
