"""Signed webhooks: the notification payload as JSON to any HTTP endpoint.

Every request carries `webhook-id` (the job id, the same on every retry) and
`webhook-timestamp`. With a secret it is signed twice: `X-Signature-SHA256`, the plain hex
HMAC-SHA256 of the body keyed with the secret's UTF-8 bytes (the format of Pulse's seeds),
and `webhook-signature` per the Standard Webhooks specification (`v1,<base64>` over
`id.timestamp.body`; a `whsec_` secret is base64-decoded, any other is used as UTF-8 bytes).

Extra headers come in two kinds, sent alike: `headers`, shown in every answer, and
`secret_headers` (`Authorization` and the like), whose values are write-only, answered as the
mask, and kept out of every error and log line even when a receiver echoes them back. A header
set to null in an update is removed (as in a JSON merge patch).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator
from standardwebhooks import Webhook

from app.channels.base import (
    ChannelConfig,
    Notification,
    SendContext,
    Sender,
    SendResult,
)
from app.channels.destinations import DestinationUrl
from app.channels.http import send_http

# Headers Pulse sets itself; a channel's extra headers may not override them.
RESERVED_HEADERS = {
    "content-type",
    "content-length",
    "host",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-signature-sha256",
}


# RFC 9110 §5.1: a field name is a token; a value has no line break or other control character.
_FIELD_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
MAX_HEADERS = 50
MAX_HEADER_VALUE = 4096


def _checked_headers(headers: dict[str, str | None]) -> dict[str, str]:
    """Headers a channel may add: valid names and values, none that Pulse sets itself.

    A null value is a header removed by an update. Values are never quoted in a message:
    they may be credentials.
    """
    kept = {name: value for name, value in headers.items() if value is not None}
    if len(kept) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers")
    for name, value in kept.items():
        if not _FIELD_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid header name")
        if len(value) > MAX_HEADER_VALUE or any((c < " " and c != "\t") or c == "\x7f" for c in value):
            raise ValueError(f"the value of {name} holds a line break or another control character, or is too long")
    clash = sorted(name for name in kept if name.lower() in RESERVED_HEADERS)
    if clash:
        raise ValueError(f"headers set by Pulse cannot be overridden: {', '.join(clash)}")
    return kept


Headers = Annotated[dict[str, str | None], AfterValidator(_checked_headers)]


class WebhookConfig(ChannelConfig):
    """Where and how to send: URL, method, extra headers (public and secret), and the signing secret."""

    # The secrets must not come back in a validation message either.
    model_config = ConfigDict(hide_input_in_errors=True)

    url: DestinationUrl
    method: Literal["POST", "PUT"] = "POST"
    headers: Headers = Field(default_factory=dict)
    secret_headers: Headers = Field(default_factory=dict)
    secret: str | None = Field(default=None, min_length=1, max_length=512)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value):
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_kind_per_header(self) -> WebhookConfig:
        public = {name.lower() for name in self.headers}
        both = sorted(name for name in self.secret_headers if name.lower() in public)
        if both:
            raise ValueError(f"a header is either in headers or in secret_headers, not both: {', '.join(both)}")
        return self


def credential_spellings(value: str) -> tuple[str, ...]:
    """The forms of a secret header value a receiver's answer might quote: the whole value,
    each long word of it (the token after `Bearer`), and the decoded `user:password` of
    `Basic` credentials with its password."""
    spellings = {value, *(word for word in value.split() if len(word) >= 8)}
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        spellings.update({decoded, decoded.partition(":")[2]})
    return tuple(spelling for spelling in spellings if len(spelling) > 1)


def signing_key(secret: str) -> bytes:
    """The Standard Webhooks key: a `whsec_` secret is base64, anything else its UTF-8 bytes."""
    if secret.startswith("whsec_"):
        return Webhook(secret)._whsecret
    return secret.encode("utf-8")


def sign(body: bytes, secret: str, message_id: str, timestamp: datetime) -> dict[str, str]:
    """The two signature headers for one request."""
    return {
        "X-Signature-SHA256": hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest(),
        "webhook-signature": Webhook(signing_key(secret)).sign(message_id, timestamp, body.decode("utf-8")),
    }


class WebhookSender(Sender):
    """POST (or PUT) the payload as JSON, signed when the channel has a secret."""

    channel_type = "webhook"
    config_model = WebhookConfig
    secret_fields = ("secret", "secret_headers.*")

    @staticmethod
    def secrets_of(config: WebhookConfig) -> tuple[str, ...]:
        """Every spelling of the channel's secrets that an error text must never show."""
        spellings = [spelling for value in config.secret_headers.values() for spelling in credential_spellings(value)]
        return (config.secret, *spellings) if config.secret else tuple(spellings)

    def send(self, config: WebhookConfig, notification: Notification, context: SendContext) -> SendResult:
        body = json.dumps(notification.payload, separators=(",", ":"), default=str).encode("utf-8")
        now = datetime.now(timezone.utc)
        headers = {
            **config.headers,
            **config.secret_headers,
            "Content-Type": "application/json",
            "User-Agent": "Pulse-Webhooks/1.0",
            "webhook-id": notification.message_id,
            "webhook-timestamp": str(int(now.timestamp())),
        }
        if config.secret:
            headers.update(sign(body, config.secret, notification.message_id, now))
        return send_http(
            config.method,
            config.url,
            body=body,
            headers=headers,
            context=context,
            service="webhook receiver",
            secrets=self.secrets_of(config),
        )
