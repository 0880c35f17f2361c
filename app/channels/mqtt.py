"""MQTT: the notification payload as JSON, published to a topic on the channel's broker.

The topic is a template: `{tenant_id}`, `{device_id}` and `{alert_type}` are filled from the
payload, and nothing else may appear in braces. Each filled-in value is percent-encoded where
it could change the topic's structure: `/` (the level separator), `+` and `#` (wildcards a
broker refuses in a published topic), `$` (a leading `$` marks topics reserved to the broker,
such as `$SYS`), the NUL character (forbidden in MQTT strings) and `%` itself, so the encoding
stays reversible and two different values never share a topic. A device `rack/7` is published
under `.../rack%2F7`, one level, never two.

Delivery follows the QoS of the channel: at QoS 1 and 2 an attempt succeeds only when the
broker acknowledges the message (PUBACK, or PUBCOMP at QoS 2); at QoS 0 there is no
acknowledgement in the protocol, so success means the message was written to the connection.
The client speaks MQTT 3.1.1, the version every broker supports. In 3.1.1 a broker has no way
to refuse one publish: one that is not authorised is acknowledged as usual or the connection
closed (MQTT 3.1.1, [MQTT-3.3.5-2]), so "acknowledged" means "accepted by the broker".

Connections are kept open and shared between the sends of a process: see
`app.channels.mqtt_connections`.
"""

from __future__ import annotations

import json
import string
from typing import Any, Literal

import paho.mqtt.client as mqtt
from pydantic import ConfigDict, Field, field_validator, model_validator

from app.channels.base import (
    ChannelConfig,
    Notification,
    SendContext,
    Sender,
    SendResult,
)
from app.channels.deadline import Deadline
from app.channels.errors import PermanentError, TransientError
from app.channels.mqtt_connections import BrokerKey, Connection, ConnectionPool, close_pool, default_pool
from app.channels.network import Host
from app.channels.trust import CaFile, CaPem

# The pool and its shutdown hook are used from here by the worker and the tests.
__all__ = ["ConnectionPool", "MqttConfig", "MqttSender", "close_pool", "render_topic"]

TOPIC_FIELDS = ("tenant_id", "device_id", "alert_type")

# The original Pulse published to this topic when a channel named none; kept so that
# existing subscribers keep receiving.
DEFAULT_TOPIC = "pulse/alerts"

# The MQTT 3.1.1 limit on a UTF-8 string, topic names included (section 1.5.3).
MAX_TOPIC_BYTES = 65535

# Characters of a filled-in value that would change the topic's structure (see the module
# docstring); `%` is encoded too so that the encoding can be reversed.
_ENCODED_CHARACTERS = {character: f"%{ord(character):02X}" for character in "%/+#$\x00"}

def parse_topic_template(template: str) -> list[tuple[str, str | None]]:
    """The template as (literal text, placeholder name or None) pieces; ValueError if invalid."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"topic is not a valid template ({exc}); write a literal brace as {{{{ or }}}}") from None
    pieces: list[tuple[str, str | None]] = []
    for literal, name, format_spec, conversion in parsed:
        if name is not None:
            if name not in TOPIC_FIELDS or format_spec or conversion:
                shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{format_spec}" if format_spec else "") + "}"
                raise ValueError(
                    f"topic placeholder {shown} is not supported; use {', '.join('{' + field + '}' for field in TOPIC_FIELDS)}"
                )
        pieces.append((literal, name))
    return pieces


def encode_topic_value(value: Any) -> str:
    """A payload value made safe to stand inside one topic level (see the module docstring)."""
    text = "" if value is None else str(value)
    return "".join(_ENCODED_CHARACTERS.get(character, character) for character in text)


def render_topic(template: str, payload: dict[str, Any]) -> str:
    """The topic for one notification: the template with each placeholder's encoded value."""
    return "".join(
        literal + ("" if name is None else encode_topic_value(payload.get(name)))
        for literal, name in parse_topic_template(template)
    )


class MqttConfig(ChannelConfig):
    # A validation error's text would otherwise quote the input, the password included.
    model_config = ConfigDict(hide_input_in_errors=True)

    host: Host
    port: int = Field(default=1883, ge=1, le=65535)
    topic: str = Field(default=DEFAULT_TOPIC, min_length=1, max_length=1024)
    qos: Literal[0, 1, 2] = 1
    retain: bool = False
    username: str | None = Field(default=None, min_length=1, max_length=512)
    password: str | None = Field(default=None, min_length=1, max_length=512)
    tls: bool = False
    verify_tls: bool = True
    ca_pem: CaPem | None = None
    ca_file: CaFile | None = None

    @field_validator("qos", mode="before")
    @classmethod
    def _qos_is_a_number(cls, qos: Any) -> Any:
        # Python's True equals 1; a JSON `true` is a mistake, not QoS 1.
        if isinstance(qos, bool):
            raise ValueError("qos must be 0, 1 or 2")
        return qos

    @field_validator("topic")
    @classmethod
    def _valid_topic(cls, topic: str) -> str:
        pieces = parse_topic_template(topic)
        literal_text = "".join(literal for literal, _ in pieces)
        wildcards = sorted({character for character in literal_text if character in "+#"})
        if wildcards:
            raise ValueError(
                f"topic must not contain the MQTT wildcard(s) {' '.join(wildcards)}: a message is published to one exact topic"
            )
        if "\x00" in literal_text:
            raise ValueError("topic must not contain the NUL character")
        if topic.startswith("$"):
            raise ValueError("topic must not start with $: such topics are reserved to the broker (e.g. $SYS)")
        return topic

    @model_validator(mode="after")
    def _consistent(self) -> "MqttConfig":
        if self.password is not None and self.username is None:
            # MQTT 3.1.1 section 3.1.2.9: a password may only be sent with a user name.
            raise ValueError("password requires username")
        for name in ("ca_pem", "ca_file"):
            if getattr(self, name) is not None and not self.tls:
                raise ValueError(f"{name} applies only when tls is true")
        if self.ca_pem is not None and self.ca_file is not None:
            raise ValueError("set ca_pem or ca_file, not both")
        return self


class MqttSender(Sender):
    """Publish the payload as JSON to the channel's topic on a pooled broker connection."""

    channel_type = "mqtt"
    config_model = MqttConfig
    secret_fields = ("password",)

    def __init__(self, pool: ConnectionPool | None = None):
        self._pool = pool

    @property
    def pool(self) -> ConnectionPool:
        """The pool this sender publishes through: its own, or the process-wide one."""
        return self._pool if self._pool is not None else default_pool()

    def send(self, config: MqttConfig, notification: Notification, context: SendContext) -> SendResult:
        topic = render_topic(config.topic, notification.payload)
        if not topic or len(topic.encode("utf-8")) > MAX_TOPIC_BYTES:
            raise PermanentError(f"MQTT topic is empty or longer than {MAX_TOPIC_BYTES} bytes once filled in")
        body = json.dumps(notification.payload, separators=(",", ":"), default=str).encode("utf-8")
        where = BrokerKey.of(config).describe()
        with Deadline(context.timeout) as deadline, self.pool.lease(config, context.settings, deadline) as (connection, client):
            try:
                message = client.publish(topic, body, qos=config.qos, retain=config.retain)
            except ValueError as exc:
                raise PermanentError(f"MQTT broker {where}: cannot publish to {topic}: {exc}") from None
            self._wait_until_published(message, client, connection, deadline, where)
        if config.qos == 0:
            detail = f"written to {where} on {topic} (QoS 0, which the broker does not acknowledge)"
        else:
            detail = f"acknowledged by {where} on {topic} (QoS {config.qos})"
        return SendResult(detail=detail)

    @staticmethod
    def _wait_until_published(
        message: mqtt.MQTTMessageInfo,
        client: mqtt.Client,
        connection: Connection,
        deadline: Deadline,
        where: str,
    ) -> None:
        try:
            while not message.is_published():
                remaining = deadline.remaining()
                if remaining <= 0:
                    # A connection that lost an acknowledgement may be half-open: the next
                    # send should not trust it.
                    connection.discard(client)
                    raise TransientError(f"MQTT broker {where} did not acknowledge the message within {deadline.seconds:g} s")
                if not client.is_connected():
                    raise TransientError(f"MQTT broker {where} closed the connection before acknowledging the message")
                # Short waits, so that a connection lost meanwhile is noticed at once.
                message.wait_for_publish(min(remaining, 0.2))
        except (RuntimeError, ValueError) as exc:
            raise TransientError(f"MQTT broker {where}: message not sent: {exc}") from None
