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

Connections are kept open and shared: one pool per worker process holds one client per broker
and credentials, each with its own network thread (paho's `loop_start()`), and every thread
of the process publishes on it. A connection that the broker closed is replaced on the next
send; one unused for `idle_seconds` is closed. After `os.fork()` the child starts with an
empty pool, since the parent's network threads do not exist in the child and its sockets
belong to the parent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import string
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from typing import Any, Callable, Iterator, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ConfigDict, Field, field_validator, model_validator

from app.channels.base import (
    ChannelConfig,
    Notification,
    SendContext,
    Sender,
    SendResult,
)
from app.channels.errors import DeliveryError, PermanentError, TransientError
from app.channels.network import Host, connection_error
from app.channels.trust import CaFile, CaPem, client_context
from app.config import DeliverySettings

log = logging.getLogger(__name__)

TOPIC_FIELDS = ("tenant_id", "device_id", "alert_type")

# The original Pulse published to this topic when a channel named none; kept so that
# existing subscribers keep receiving.
DEFAULT_TOPIC = "pulse/alerts"

# The MQTT 3.1.1 limit on a UTF-8 string, topic names included (section 1.5.3).
MAX_TOPIC_BYTES = 65535

# Characters of a filled-in value that would change the topic's structure (see the module
# docstring); `%` is encoded too so that the encoding can be reversed.
_ENCODED_CHARACTERS = {character: f"%{ord(character):02X}" for character in "%/+#$\x00"}

KEEPALIVE_SECONDS = 30
IDLE_SECONDS = 300.0

# CONNACK refusals that the same settings will meet again: the credentials, the client's
# permissions or the protocol. Other refusals (server unavailable, busy, quota) pass.
_PERMANENT_REFUSALS = {
    "Bad user name or password",
    "Not authorized",
    "Banned",
    "Bad authentication method",
    "Client identifier not valid",
    "Unsupported protocol version",
}


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


def _digest(secret: str | None) -> str | None:
    return None if secret is None else hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class BrokerKey:
    """What makes two channels able to share one connection: broker, credentials and TLS.

    The password is kept as a digest, so that a key shown in a log or a debugger reveals
    nothing, while a changed password still gets a connection of its own; so is `ca_pem`,
    which is long.
    """

    host: str
    port: int
    username: str | None
    password_digest: str | None
    tls: bool
    verify_tls: bool
    ca_digest: str | None
    ca_file: str | None

    @classmethod
    def of(cls, config: MqttConfig) -> "BrokerKey":
        return cls(
            config.host,
            config.port,
            config.username,
            _digest(config.password),
            config.tls,
            config.verify_tls,
            _digest(config.ca_pem),
            config.ca_file,
        )

    def describe(self) -> str:
        """The broker as `host:port`, for messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _stop(client: mqtt.Client, wait: bool = False) -> None:
    # disconnect() queues DISCONNECT and makes the network thread end once it is written.
    # Waiting for the thread (loop_stop) is only for an orderly close: on a half-open
    # connection the write can stall until the keepalive gives up, and a send must not.
    client.disconnect()
    if wait:
        client.loop_stop()


class _Connection:
    """One pooled broker connection: the client, and the lock that serialises (re)connecting."""

    def __init__(self, key: BrokerKey):
        self.key = key
        self.lock = threading.Lock()
        self.client: mqtt.Client | None = None
        self.client_id: str | None = None
        self.leases = 0
        self.last_used = time.monotonic()

    def connected_client(
        self, config: MqttConfig, settings: DeliverySettings, deadline: float, new_client_id: Callable[[], str]
    ) -> mqtt.Client:
        """The connected client, connecting first if there is none or the broker dropped it."""
        where = self.key.describe()
        if not self.lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise TransientError(f"MQTT broker {where}: timed out waiting for the connection another send is opening")
        try:
            if self.client is not None and self.client.is_connected():
                return self.client
            if self.client is not None:
                log.info("MQTT connection %s to %s was closed; reconnecting", self.client_id, where)
                _stop(self.client)
                self.client = None
            client_id = new_client_id()
            self.client = _connect(config, settings, self.key, deadline, client_id)
            self.client_id = client_id
            return self.client
        finally:
            self.lock.release()

    def discard(self, client: mqtt.Client) -> None:
        """Close `client` if it is still this connection's client, so the next send reconnects."""
        with self.lock:
            if self.client is client:
                self.client = None
                _stop(client)

    def close(self) -> None:
        """Disconnect from the broker and wait for the network thread to end."""
        with self.lock:
            if self.client is not None:
                _stop(self.client, wait=True)
                self.client = None


def _connect_failure(exc: OSError, where: str, config: MqttConfig, timeout: float) -> DeliveryError:
    """The error for a connection that failed before the broker could answer."""
    # A plain listener resets a TLS handshake; the hint saves a look at the broker's log.
    hint = "; is the port a TLS listener?" if config.tls else ""
    return connection_error(
        exc, f"MQTT broker {where}", timeout, trust_hint="set ca_pem (or ca_file) to the CA that issued it", hint=hint
    )


def _connect(config: MqttConfig, settings: DeliverySettings, key: BrokerKey, deadline: float, client_id: str) -> mqtt.Client:
    """A new client, connected and accepted by the broker (CONNACK), with its network thread."""
    where = key.describe()
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,
        # Pulse, not paho, decides when to reconnect: on the next send, with a new client,
        # so that messages of a lost session are never re-sent behind the retry policy's back.
        reconnect_on_failure=False,
    )
    client.connect_timeout = max(0.1, deadline - time.monotonic())
    if config.username is not None:
        client.username_pw_set(config.username, config.password)
    if config.tls:
        client.tls_set_context(
            client_context(settings, verify=config.verify_tls, ca_pem=config.ca_pem, ca_file=config.ca_file)
        )
        if not config.verify_tls:
            # paho checks the host name itself unless the context does (paho client.py,
            # _ssl_wrap_socket); with verification off it must skip that check too.
            client.tls_insecure_set(True)

    answered = threading.Event()
    outcome: dict[str, Any] = {}

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        outcome.setdefault("connack", reason_code)
        answered.set()

    def on_disconnect(client, userdata, flags, reason_code, properties) -> None:
        outcome.setdefault("closed", reason_code)
        answered.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect(config.host, config.port, keepalive=KEEPALIVE_SECONDS)
    except OSError as exc:
        raise _connect_failure(exc, where, config, client.connect_timeout) from None

    client.loop_start()
    if not answered.wait(max(0.0, deadline - time.monotonic())):
        _stop(client)
        raise TransientError(f"MQTT broker {where} did not accept the connection in time (no CONNACK)")
    connack = outcome.get("connack")
    if connack is None:
        _stop(client)
        raise TransientError(f"MQTT broker {where} closed the connection before accepting it")
    if connack.is_failure:
        _stop(client)
        refusal = f"MQTT broker {where} refused the connection: {connack}"
        if config.username is not None:
            refusal += f" (username {config.username!r})"
        if str(connack) in _PERMANENT_REFUSALS:
            raise PermanentError(refusal)
        raise TransientError(refusal)
    log.info("MQTT connection %s to %s opened", client_id, where)
    return client


_pools: "weakref.WeakSet[ConnectionPool]" = weakref.WeakSet()


class ConnectionPool:
    """The broker connections of one process, shared by all its threads."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS):
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._connections: dict[BrokerKey, _Connection] = {}
        self._new_process()
        _pools.add(self)

    def _new_process(self) -> None:
        # Client ids must be unique on a broker (a second client with the same id takes over
        # the session and the first is disconnected, MQTT 3.1.1 section 3.1.4), so they carry
        # the process id, a random token of this process and a counter.
        self._token = secrets.token_hex(4)
        self._sequence = count(1)

    def _client_id(self) -> str:
        return f"pulse-{os.getpid()}-{next(self._sequence)}-{self._token}"

    @contextmanager
    def lease(
        self, config: MqttConfig, settings: DeliverySettings, deadline: float
    ) -> Iterator[tuple[_Connection, mqtt.Client]]:
        """A connected client for `config`, held for one send."""
        key = BrokerKey.of(config)
        now = time.monotonic()
        with self._lock:
            idle = [
                connection
                for other, connection in self._connections.items()
                if other != key and connection.leases == 0 and now - connection.last_used >= self.idle_seconds
            ]
            for connection in idle:
                del self._connections[connection.key]
            connection = self._connections.get(key)
            if connection is None:
                connection = self._connections[key] = _Connection(key)
            connection.leases += 1
        for stale in idle:
            log.info("closing MQTT connection %s to %s: unused for %g s", stale.client_id, stale.key.describe(), self.idle_seconds)
            stale.close()
        try:
            yield connection, connection.connected_client(config, settings, deadline, self._client_id)
        finally:
            with self._lock:
                connection.leases -= 1
                connection.last_used = time.monotonic()

    def clients(self) -> list[mqtt.Client]:
        """The clients the pool holds now (connected or not), for inspection."""
        with self._lock:
            return [connection.client for connection in self._connections.values() if connection.client is not None]

    def client_ids(self) -> list[str]:
        """The MQTT client ids of the pool's clients, as the broker knows them."""
        with self._lock:
            return [connection.client_id for connection in self._connections.values() if connection.client is not None]

    def close(self) -> None:
        """Disconnect every connection (at worker shutdown, or at the end of a test)."""
        with self._lock:
            connections = list(self._connections.values())
            self._connections.clear()
        for connection in connections:
            connection.close()

    def _forget_after_fork(self) -> None:
        # In the child the parent's network threads are gone and its sockets are shared with
        # the parent: sending DISCONNECT on them would end the parent's sessions. The
        # connections are dropped unclosed (a garbage-collected client only closes its copy
        # of the socket) and the locks replaced, as another thread may have held one at fork.
        self._lock = threading.Lock()
        self._connections = {}
        self._new_process()


def _after_fork_in_child() -> None:
    for pool in list(_pools):
        pool._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)

POOL = ConnectionPool()


def close_pool() -> None:
    """Disconnect the process-wide pool's connections, e.g. at worker process shutdown."""
    POOL.close()


class MqttSender(Sender):
    """Publish the payload as JSON to the channel's topic on a pooled broker connection."""

    channel_type = "mqtt"
    config_model = MqttConfig
    secret_fields = ("password",)

    def __init__(self, pool: ConnectionPool | None = None):
        self.pool = pool if pool is not None else POOL

    def send(self, config: MqttConfig, notification: Notification, context: SendContext) -> SendResult:
        deadline = time.monotonic() + context.timeout
        topic = render_topic(config.topic, notification.payload)
        if not topic or len(topic.encode("utf-8")) > MAX_TOPIC_BYTES:
            raise PermanentError(f"MQTT topic is empty or longer than {MAX_TOPIC_BYTES} bytes once filled in")
        body = json.dumps(notification.payload, separators=(",", ":"), default=str).encode("utf-8")
        where = BrokerKey.of(config).describe()
        with self.pool.lease(config, context.settings, deadline) as (connection, client):
            try:
                message = client.publish(topic, body, qos=config.qos, retain=config.retain)
            except ValueError as exc:
                raise PermanentError(f"MQTT broker {where}: cannot publish to {topic}: {exc}") from None
            self._wait_until_published(message, client, connection, deadline, where, context.timeout)
        if config.qos == 0:
            detail = f"written to {where} on {topic} (QoS 0, which the broker does not acknowledge)"
        else:
            detail = f"acknowledged by {where} on {topic} (QoS {config.qos})"
        return SendResult(detail=detail)

    @staticmethod
    def _wait_until_published(
        message: mqtt.MQTTMessageInfo,
        client: mqtt.Client,
        connection: _Connection,
        deadline: float,
        where: str,
        timeout: float,
    ) -> None:
        try:
            while not message.is_published():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    # A connection that lost an acknowledgement may be half-open: the next
                    # send should not trust it.
                    connection.discard(client)
                    raise TransientError(f"MQTT broker {where} did not acknowledge the message within {timeout:g} s")
                if not client.is_connected():
                    raise TransientError(f"MQTT broker {where} closed the connection before acknowledging the message")
                # Short waits, so that a connection lost meanwhile is noticed at once.
                message.wait_for_publish(min(remaining, 0.2))
        except (RuntimeError, ValueError) as exc:
            raise TransientError(f"MQTT broker {where}: message not sent: {exc}") from None
