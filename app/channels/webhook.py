"""Signed webhooks: the notification payload as JSON to any HTTP endpoint.

Every request carries `webhook-id` (the job id, the same on every retry) and
`webhook-timestamp`. With a secret it is signed twice: `X-Signature-SHA256`, the plain hex
HMAC-SHA256 of the body keyed with the secret's UTF-8 bytes (the format of Pulse's seeds),
and `webhook-signature` per the Standard Webhooks specification (`v1,<base64>` over
`id.timestamp.body`; a `whsec_` secret is base64-decoded, any other is used as UTF-8 bytes).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timezone
from typing import Literal

from pydantic import ConfigDict, Field, field_validator
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


class WebhookConfig(ChannelConfig):
    """Where and how to send: URL, method, extra headers, and the signing secret."""

    # The secret must not come back in a validation message either.
    model_config = ConfigDict(hide_input_in_errors=True)

    url: DestinationUrl
    method: Literal["POST", "PUT"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    secret: str | None = Field(default=None, min_length=1, max_length=512)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value):
        return value.upper() if isinstance(value, str) else value

    @field_validator("headers")
    @classmethod
    def _no_reserved_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        clash = sorted(name for name in headers if name.lower() in RESERVED_HEADERS)
        if clash:
            raise ValueError(f"headers set by Pulse cannot be overridden: {', '.join(clash)}")
        return headers


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
    secret_fields = ("secret",)

    def send(self, config: WebhookConfig, notification: Notification, context: SendContext) -> SendResult:
        body = json.dumps(notification.payload, separators=(",", ":"), default=str).encode("utf-8")
        now = datetime.now(timezone.utc)
        headers = {
            **config.headers,
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
            secrets=(config.secret,) if config.secret else (),
        )
