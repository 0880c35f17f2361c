"""The broker connections the MQTT channel publishes on: kept open and shared.

One pool per process holds one client per broker, credentials and trust settings
(`BrokerKey`), each with its own network thread (paho's `loop_start()`), and every thread of
the process publishes on it. A connection that the broker closed is replaced on the next
send; one unused for `idle_seconds` is closed. After `os.fork()` the child starts with an
empty pool, since the parent's network threads do not exist in the child and its sockets
belong to the parent. The process-wide pool is made by the first send that needs it, so that
importing the channel registry starts nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from typing import TYPE_CHECKING, Any, Callable, Iterator

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from app.channels.deadline import Deadline
from app.channels.errors import DeliveryError, PermanentError, TransientError
from app.channels.network import connection_error, open_connection
from app.channels.trust import client_context
from app.config import DeliverySettings

if TYPE_CHECKING:
    from app.channels.mqtt import MqttConfig

log = logging.getLogger(__name__)

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


class Connection:
    """One pooled broker connection: the client, and the lock that serialises (re)connecting."""

    def __init__(self, key: BrokerKey):
        self.key = key
        self.lock = threading.Lock()
        self.client: mqtt.Client | None = None
        self.client_id: str | None = None
        self.leases = 0
        self.last_used = time.monotonic()

    def connected_client(
        self, config: MqttConfig, settings: DeliverySettings, deadline: Deadline, new_client_id: Callable[[], str]
    ) -> mqtt.Client:
        """The connected client, connecting first if there is none or the broker dropped it."""
        where = self.key.describe()
        if not self.lock.acquire(timeout=deadline.remaining()):
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


class _BoundedClient(mqtt.Client):
    """paho's client, opening its TCP connection within the deadline of the send opening it."""

    opening_deadline: Deadline

    def _create_socket_connection(self):
        # paho 2.2 opens the connection here (Client._create_socket, then its TLS handshake,
        # happen inside connect()); the deadline watches the socket until the broker accepts.
        return open_connection(self._host, self._port, self.opening_deadline, what=f"MQTT broker {self._host}")


def _connect(config: MqttConfig, settings: DeliverySettings, key: BrokerKey, deadline: Deadline, client_id: str) -> mqtt.Client:
    """A new client, connected and accepted by the broker (CONNACK), with its network thread.

    The connection outlives the send that opens it, so it is watched only until the broker
    accepts it, by a deadline of its own that ends with the send's.
    """
    where = key.describe()
    client = _BoundedClient(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,
        # Pulse, not paho, decides when to reconnect: on the next send, with a new client,
        # so that messages of a lost session are never re-sent behind the retry policy's back.
        reconnect_on_failure=False,
    )
    client.connect_timeout = max(0.1, deadline.remaining())
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
    with Deadline(deadline.seconds, ends_with=deadline) as opening:
        client.opening_deadline = opening
        connack = _connack(client, config, where, opening)
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


def _connack(client: mqtt.Client, config: MqttConfig, where: str, opening: Deadline) -> Any:
    """Connect and wait for the broker's CONNACK, within the opening deadline."""
    no_connack = f"MQTT broker {where} did not accept the connection in time (no CONNACK within {opening.seconds:g} s)"
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
        # The socket's own timeout (the time that remained) may end a trickling handshake an
        # instant before the watchdog does: either way the broker did not accept in time.
        if opening.fired or isinstance(exc, TimeoutError):
            raise TransientError(no_connack) from None
        raise _connect_failure(exc, where, config, opening.seconds) from None
    client.loop_start()
    if not answered.wait(opening.remaining()) or (opening.fired and "connack" not in outcome):
        _stop(client)
        raise TransientError(no_connack)
    if "connack" not in outcome:
        _stop(client)
        raise TransientError(f"MQTT broker {where} closed the connection before accepting it")
    return outcome["connack"]


_pools: "weakref.WeakSet[ConnectionPool]" = weakref.WeakSet()
_fork_hook_registered = False


def _track(pool: "ConnectionPool") -> None:
    """Remember a pool, to empty it in a forked child; the fork hook is set with the first."""
    global _fork_hook_registered
    if not _fork_hook_registered:
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_hook_registered = True
    _pools.add(pool)


class ConnectionPool:
    """The broker connections of one process, shared by all its threads."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS):
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._connections: dict[BrokerKey, Connection] = {}
        self._new_process()
        _track(self)

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
        self, config: MqttConfig, settings: DeliverySettings, deadline: Deadline
    ) -> Iterator[tuple[Connection, mqtt.Client]]:
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
                connection = self._connections[key] = Connection(key)
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


_default_pool: ConnectionPool | None = None
_default_pool_lock = threading.Lock()


def default_pool() -> ConnectionPool:
    """The process-wide pool, made on the first send that needs it (never at import)."""
    global _default_pool
    with _default_pool_lock:
        if _default_pool is None:
            _default_pool = ConnectionPool()
        return _default_pool


def close_pool() -> None:
    """Disconnect the process-wide pool's connections, e.g. at worker process shutdown."""
    with _default_pool_lock:
        pool = _default_pool
    if pool is not None:
        pool.close()
