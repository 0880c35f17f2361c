"""The MQTT channel against real Mosquitto brokers, observed by a real MQTT subscriber.

The shared broker on 127.0.0.1:1883 (anonymous) carries the publishing tests; each test uses
a tenant id of its own, so tests running in parallel never see each other's messages. A
private Mosquitto started here, on free ports, requires a password and has a TLS listener.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import pwd
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import ValidationError

from app.channels.base import Notification, SendContext
from app.channels.errors import PermanentError, TransientError
from app.channels.mqtt import ConnectionPool, MqttConfig, MqttSender, render_topic
from app.config import DeliverySettings
from tests.support import ROOT, free_port, wait_for

SHARED_HOST = "127.0.0.1"
SHARED_PORT = 1883
CONTEXT = SendContext(DeliverySettings(allow_private_destinations=True, timeout_seconds=3))


def trusting(directory) -> SendContext:
    """CONTEXT with TRUSTED_CA_DIR set to `directory`, where a test's CA file lives."""
    return SendContext(DeliverySettings(allow_private_destinations=True, timeout_seconds=3, trusted_ca_dir=str(directory)))
TOPIC_TEMPLATE = "pulse-test/{tenant_id}/alerts/{device_id}/{alert_type}"
USERNAME = "pulse-publisher"
PASSWORD = "Secret-Broker-Password-7f3a"
WAIT_SECONDS = 5.0


def payload_for(tenant_id: str, device_id: str = "sensor-12", alert_type: str = "temperature_high") -> dict:
    return {
        "alert_id": 4711,
        "alert_type": alert_type,
        "severity": 4,
        "severity_label": "critical",
        "device_id": device_id,
        "site_id": "site-north",
        "tenant_id": tenant_id,
        "message": "Temperature 81.5 °C above 75 °C",
        "details": {"value": 81.5, "threshold": 75, "device_tags": {"zone": "B"}},
        "triggered_at": "2025-03-01T12:00:00+00:00",
        "event_type": "OPEN",
        "job_id": 99,
    }


def notification_for(tenant_id: str, **fields) -> Notification:
    return Notification(payload=payload_for(tenant_id, **fields), message_id="99")


def compact_json(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


@pytest.fixture(scope="session")
def shared_broker() -> tuple[str, int]:
    try:
        socket.create_connection((SHARED_HOST, SHARED_PORT), timeout=2).close()
    except OSError as exc:
        pytest.fail(
            f"Mosquitto is not reachable on {SHARED_HOST}:{SHARED_PORT} ({exc.strerror or exc}): install the "
            "Debian package `mosquitto` and start it with `listener 1883 127.0.0.1` and `allow_anonymous true` "
            "(`make test` starts it when installed)"
        )
    return SHARED_HOST, SHARED_PORT


@pytest.fixture
def tenant_id() -> str:
    return f"tenant-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def pool():
    pool = ConnectionPool()
    yield pool
    pool.close()


@pytest.fixture
def sender(pool) -> MqttSender:
    return MqttSender(pool=pool)


def shared_config(**overrides) -> MqttConfig:
    return MqttConfig(**{"host": SHARED_HOST, "port": SHARED_PORT, "topic": TOPIC_TEMPLATE, **overrides})


class Subscriber:
    """A real MQTT 5 client that records what the broker forwards, flags as published."""

    def __init__(self, port: int, topic_filter: str, username: str | None = None, password: str | None = None):
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        subscribed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"pulse-test-subscriber-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_message = lambda client, userdata, message: self.messages.put(message)
        self.client.on_subscribe = lambda client, userdata, mid, reason_codes, properties: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        # Retain As Published keeps the publisher's retain flag on live messages (MQTT 5,
        # section 3.8.3.1); without it the broker clears the flag for existing subscriptions.
        self.client.subscribe(topic_filter, options=SubscribeOptions(qos=2, retainAsPublished=True))
        if not subscribed.wait(WAIT_SECONDS):
            pytest.fail(f"no SUBACK for {topic_filter} within {WAIT_SECONDS:g} s")

    def receive(self) -> mqtt.MQTTMessage:
        try:
            return self.messages.get(timeout=WAIT_SECONDS)
        except queue.Empty:
            pytest.fail(f"the subscriber received nothing within {WAIT_SECONDS:g} s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribe():
    subscribers: list[Subscriber] = []

    def start(port: int, topic_filter: str, **credentials) -> Subscriber:
        subscriber = Subscriber(port, topic_filter, **credentials)
        subscribers.append(subscriber)
        return subscriber

    yield start
    for subscriber in subscribers:
        subscriber.close()


def publish_directly(port: int, topic: str, payload: bytes, retain: bool) -> None:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(WAIT_SECONDS)
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def retained_topics(shared_broker):
    """Topics whose retained message is cleared after the test (an empty retained payload)."""
    topics: list[str] = []
    yield topics
    for topic in topics:
        publish_directly(SHARED_PORT, topic, b"", retain=True)


# --- A private broker with a password and a TLS listener ------------------------------------


@dataclass
class PrivateBroker:
    plain_port: int
    tls_port: int
    ca_file: Path


def mosquitto_binary(name: str) -> str:
    found = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    if found is None:
        pytest.fail(f"`{name}` not found: install the Debian package `mosquitto`")
    return found


def write_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate it signs, for 127.0.0.1 and localhost."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Pulse test CA")])
    ca_certificate = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    certificate_file = directory / "server.pem"
    key_file = directory / "server.key"
    ca_file.write_bytes(ca_certificate.public_bytes(serialization.Encoding.PEM))
    certificate_file.write_bytes(server_certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_file, certificate_file, key_file


def accepts_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def private_broker(tmp_path_factory) -> PrivateBroker:
    mosquitto = mosquitto_binary("mosquitto")
    mosquitto_passwd = mosquitto_binary("mosquitto_passwd")
    directory = tmp_path_factory.mktemp("mosquitto")
    subprocess.run([mosquitto_passwd, "-b", "-c", str(directory / "passwords"), USERNAME, PASSWORD], check=True)
    ca_file, certificate_file, key_file = write_certificates(directory)
    plain_port, tls_port = free_port(), free_port()
    # Started as root, Mosquitto switches to the `mosquitto` user, which cannot read this
    # private directory; naming the current user keeps it as it is (ignored when not root).
    (directory / "mosquitto.conf").write_text(
        f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
        "per_listener_settings false\n"
        "allow_anonymous false\n"
        f"password_file {directory / 'passwords'}\n"
        "persistence false\n"
        f"listener {plain_port} 127.0.0.1\n"
        f"listener {tls_port} 127.0.0.1\n"
        f"certfile {certificate_file}\n"
        f"keyfile {key_file}\n"
    )
    log_file = directory / "mosquitto.log"
    with open(log_file, "wb") as log:
        process = subprocess.Popen(
            [mosquitto, "-c", str(directory / "mosquitto.conf")], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while not (accepts_connections(plain_port) and accepts_connections(tls_port)):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the private Mosquitto did not start listening:\n{log_file.read_text()}")
            time.sleep(0.02)
        yield PrivateBroker(plain_port=plain_port, tls_port=tls_port, ca_file=ca_file)
    finally:
        process.terminate()
        process.wait(timeout=WAIT_SECONDS)


def private_config(broker: PrivateBroker, **overrides) -> MqttConfig:
    settings = {
        "host": "127.0.0.1",
        "port": broker.plain_port,
        "topic": TOPIC_TEMPLATE,
        "username": USERNAME,
        "password": PASSWORD,
    }
    return MqttConfig(**{**settings, **overrides})


@pytest.fixture
def silent_broker():
    """A TCP peer that accepts connections and never answers: no CONNACK ever comes."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.fixture
def unacknowledging_broker():
    """A minimal MQTT peer that accepts the connection (CONNACK) and never acknowledges a publish."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    connections: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connections.append(connection)
            connection.recv(4096)  # CONNECT, a small packet that arrives in one read
            connection.sendall(bytes([0x20, 0x02, 0x00, 0x00]))  # CONNACK: accepted

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()
    for connection in connections:
        connection.close()


# --- Configuration -----------------------------------------------------------------------


def test_config_defaults_follow_the_design():
    config = MqttConfig(host="broker.example.com")
    assert (config.port, config.topic, config.qos, config.retain, config.tls, config.verify_tls) == (
        1883, "pulse/alerts", 1, False, False, True,
    )
    assert (config.username, config.password, config.ca_file) == (None, None, None)


def test_password_is_the_secret_field():
    assert MqttSender.secret_fields == ("password",)


@pytest.mark.parametrize(
    "topic",
    [
        "{tenant_id}/{device_id}/{alert_type}",
        "plant/alerts",
        "a/{{literal braces}}/{device_id}",
        "tenants/{tenant_id}/devices/{device_id}/alerts/{alert_type}",
    ],
)
def test_topic_templates_with_the_three_placeholders_are_accepted(topic):
    assert MqttConfig(host="broker", topic=topic).topic == topic


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"host": "mqtt://broker"}, "host", "without scheme"),
        ({"host": "broker:1883"}, "host", "without scheme, port"),
        ({"host": ""}, "host", "at least 1"),
        ({"port": 0}, "port", "greater than or equal to 1"),
        ({"port": 65536}, "port", "less than or equal to 65535"),
        ({"qos": 3}, "qos", "0, 1 or 2"),
        ({"qos": True}, "qos", "0, 1 or 2"),
        ({"retain": "sometimes"}, "retain", "boolean"),
        ({"tls": "maybe"}, "tls", "boolean"),
        ({"topic": ""}, "topic", "at least 1"),
        ({"topic": "pulse/+/alerts"}, "topic", "wildcard(s) +"),
        ({"topic": "pulse/{tenant_id}/#"}, "topic", "wildcard(s) #"),
        ({"topic": "pulse/{site_id}"}, "topic", "{site_id} is not supported"),
        ({"topic": "pulse/{device_id!r}"}, "topic", "{device_id!r} is not supported"),
        ({"topic": "pulse/{device_id:>8}"}, "topic", "{device_id:>8} is not supported"),
        ({"topic": "pulse/{0}"}, "topic", "{0} is not supported"),
        ({"topic": "pulse/{}"}, "topic", "{} is not supported"),
        ({"topic": "pulse/{device_id"}, "topic", "not a valid template"),
        ({"topic": "$SYS/pulse"}, "topic", "reserved to the broker"),
        ({"topic": "pulse/\x00"}, "topic", "NUL"),
        ({"username": ""}, "username", "at least 1"),
        ({"password": "secret-without-user"}, "password", "password requires username"),
        ({"ca_file": "/etc/ssl/ca.pem"}, "ca_file", "ca_file applies only when tls is true"),
        ({"client_id": "mine"}, "client_id", "Extra inputs are not permitted"),
    ],
)
def test_invalid_config_is_rejected_naming_the_field(changes, field, says):
    with pytest.raises(ValidationError) as raised:
        MqttConfig(**{"host": "broker", **changes})
    error = raised.value.errors()[0]
    assert field in error["loc"] or field in error["msg"]
    assert says in error["msg"]
    assert "secret-without-user" not in str(raised.value)


@pytest.mark.parametrize(
    ("device_id", "expected_level"),
    [
        ("sensor-12", "sensor-12"),
        ("rack/7", "rack%2F7"),
        ("any+one", "any%2Bone"),
        ("all#", "all%23"),
        ("$SYS", "%24SYS"),
        ("50%", "50%25"),
        ("nul\x00byte", "nul%00byte"),
        ("Kühlraum 3", "Kühlraum 3"),
        (None, ""),
    ],
)
def test_topic_values_are_encoded_so_they_stay_one_level(device_id, expected_level):
    topic = render_topic("pulse/{tenant_id}/alerts/{device_id}", {"tenant_id": "acme", "device_id": device_id})
    assert topic == f"pulse/acme/alerts/{expected_level}"


# --- Publishing on the shared broker -------------------------------------------------------


def test_payload_is_published_as_json_to_the_rendered_topic(shared_broker, sender, subscribe, tenant_id):
    subscriber = subscribe(SHARED_PORT, f"pulse-test/{tenant_id}/#")
    notification = notification_for(tenant_id)

    result = sender.send(shared_config(), notification, CONTEXT)

    message = subscriber.receive()
    assert message.topic == f"pulse-test/{tenant_id}/alerts/sensor-12/temperature_high"
    assert message.payload == compact_json(notification.payload)
    assert (message.qos, message.retain) == (1, False)
    assert "acknowledged" in result.detail


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_message_arrives_at_the_configured_qos(shared_broker, sender, subscribe, tenant_id, qos):
    subscriber = subscribe(SHARED_PORT, f"pulse-test/{tenant_id}/#")

    sender.send(shared_config(qos=qos), notification_for(tenant_id), CONTEXT)

    assert subscriber.receive().qos == qos


@pytest.mark.parametrize("retain", [False, True])
def test_message_carries_the_configured_retain_flag(shared_broker, sender, subscribe, tenant_id, retained_topics, retain):
    subscriber = subscribe(SHARED_PORT, f"pulse-test/{tenant_id}/#")
    retained_topics.append(f"pulse-test/{tenant_id}/alerts/sensor-12/temperature_high")

    sender.send(shared_config(retain=retain), notification_for(tenant_id), CONTEXT)

    assert subscriber.receive().retain is retain


def test_retained_message_reaches_a_subscriber_that_comes_later(shared_broker, sender, subscribe, tenant_id, retained_topics):
    topic = f"pulse-test/{tenant_id}/alerts/sensor-12/temperature_high"
    retained_topics.append(topic)
    notification = notification_for(tenant_id)

    sender.send(shared_config(retain=True), notification, CONTEXT)
    late_subscriber = subscribe(SHARED_PORT, topic)

    message = late_subscriber.receive()
    assert (message.topic, message.payload, message.retain) == (topic, compact_json(notification.payload), True)


def test_device_id_with_separator_and_wildcards_is_published_as_one_level(shared_broker, sender, subscribe, tenant_id):
    subscriber = subscribe(SHARED_PORT, f"pulse-test/{tenant_id}/alerts/+/door_open")

    sender.send(shared_config(), notification_for(tenant_id, device_id="hall/2+#", alert_type="door_open"), CONTEXT)

    assert subscriber.receive().topic == f"pulse-test/{tenant_id}/alerts/hall%2F2%2B%23/door_open"


# --- The connection pool -----------------------------------------------------------------


def test_importing_the_channel_registry_makes_no_pool_and_starts_no_thread():
    code = (
        "import threading, app.channels, app.channels.mqtt_connections as pools; "
        "print(len(pools._pools), threading.active_count())"
    )
    shown = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)

    assert shown.stdout.split() == ["0", "1"]


def test_two_sends_reuse_one_connection(shared_broker, sender, pool, subscribe, tenant_id):
    subscriber = subscribe(SHARED_PORT, f"pulse-test/{tenant_id}/#")

    sender.send(shared_config(), notification_for(tenant_id), CONTEXT)
    [first_client] = pool.clients()
    sender.send(shared_config(), notification_for(tenant_id), CONTEXT)

    assert pool.clients() == [first_client]
    assert first_client.is_connected()
    subscriber.receive()
    subscriber.receive()


def test_concurrent_sends_from_many_threads_share_one_connection(shared_broker, sender, pool, subscribe, tenant_id):
    subscriber = subscribe(SHARED_PORT, f"pulse-test/{tenant_id}/#")
    devices = [f"sensor-{number}" for number in range(16)]

    with ThreadPoolExecutor(max_workers=8) as threads:
        list(threads.map(lambda device: sender.send(shared_config(), notification_for(tenant_id, device_id=device), CONTEXT), devices))

    assert len(pool.clients()) == 1
    received = {json.loads(subscriber.receive().payload)["device_id"] for _ in devices}
    assert received == set(devices)


def test_connection_closed_by_the_broker_is_replaced_on_the_next_send(shared_broker, sender, pool, subscribe, tenant_id):
    subscriber = subscribe(SHARED_PORT, f"pulse-test/{tenant_id}/#")
    sender.send(shared_config(), notification_for(tenant_id), CONTEXT)
    [first_client] = pool.clients()
    # A second client with the same id takes the session over: the broker closes the first
    # connection (MQTT 3.1.1 section 3.1.4).
    intruder = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=pool.client_ids()[0])
    intruder.connect(SHARED_HOST, SHARED_PORT)
    intruder.loop_start()
    try:
        wait_for(lambda: not first_client.is_connected(), timeout=WAIT_SECONDS, interval=0.02, message="the broker to close the pooled connection")

        sender.send(shared_config(), notification_for(tenant_id, device_id="after-drop"), CONTEXT)
    finally:
        intruder.disconnect()
        intruder.loop_stop()

    [second_client] = pool.clients()
    assert second_client is not first_client and second_client.is_connected()
    assert json.loads(subscriber.receive().payload)["device_id"] == "sensor-12"
    assert json.loads(subscriber.receive().payload)["device_id"] == "after-drop"


def test_forked_child_starts_with_an_empty_pool_and_leaves_the_parent_connection_open(
    shared_broker, sender, pool, subscribe, tenant_id
):
    subscriber = subscribe(SHARED_PORT, f"pulse-test/{tenant_id}/#")
    sender.send(shared_config(), notification_for(tenant_id, device_id="parent-before"), CONTEXT)
    [parent_client] = pool.clients()

    child = os.fork()
    if child == 0:
        status = 3
        try:
            if pool.clients():
                status = 1
            else:
                status = 2
                sender.send(shared_config(), notification_for(tenant_id, device_id="child"), CONTEXT)
                status = 0
        finally:
            os._exit(status)
    _, wait_status = os.waitpid(child, 0)

    assert os.waitstatus_to_exitcode(wait_status) == 0, "1: pool not empty in the child, 2: the child's send failed"
    sender.send(shared_config(), notification_for(tenant_id, device_id="parent-after"), CONTEXT)
    assert pool.clients() == [parent_client] and parent_client.is_connected()
    received = {json.loads(subscriber.receive().payload)["device_id"] for _ in range(3)}
    assert received == {"parent-before", "child", "parent-after"}


def test_idle_connection_is_closed_when_the_pool_is_next_used(shared_broker, subscribe, tenant_id):
    pool = ConnectionPool(idle_seconds=0)
    sender = MqttSender(pool=pool)
    try:
        sender.send(shared_config(), notification_for(tenant_id), CONTEXT)
        [idle_client] = pool.clients()

        sender.send(shared_config(host="localhost"), notification_for(tenant_id), CONTEXT)

        assert idle_client not in pool.clients() and len(pool.clients()) == 1
        assert not idle_client.is_connected()
    finally:
        pool.close()


def test_closing_the_pool_disconnects_every_client(shared_broker, sender, pool, tenant_id):
    sender.send(shared_config(), notification_for(tenant_id), CONTEXT)
    [client] = pool.clients()

    pool.close()

    assert pool.clients() == [] and not client.is_connected()


# --- Failures --------------------------------------------------------------------------------


def test_broker_not_listening_is_transient(sender, tenant_id):
    with pytest.raises(TransientError, match="refused the connection"):
        sender.send(shared_config(port=free_port()), notification_for(tenant_id), CONTEXT)


def test_broker_that_never_accepts_the_connection_is_transient(sender, silent_broker, tenant_id):
    quick = SendContext(DeliverySettings(allow_private_destinations=True, timeout_seconds=0.5))

    with pytest.raises(TransientError, match="did not accept the connection in time"):
        sender.send(shared_config(port=silent_broker), notification_for(tenant_id), quick)


def test_message_the_broker_never_acknowledges_is_transient_and_drops_the_connection(
    sender, pool, unacknowledging_broker, tenant_id
):
    quick = SendContext(DeliverySettings(allow_private_destinations=True, timeout_seconds=0.5))

    with pytest.raises(TransientError, match="did not acknowledge the message within 0.5 s"):
        sender.send(shared_config(port=unacknowledging_broker, qos=1), notification_for(tenant_id), quick)
    assert pool.clients() == []


# --- Credentials and TLS on the private broker ---------------------------------------------


def test_username_and_password_are_accepted(private_broker, sender, subscribe, tenant_id):
    subscriber = subscribe(private_broker.plain_port, f"pulse-test/{tenant_id}/#", username=USERNAME, password=PASSWORD)
    notification = notification_for(tenant_id)

    sender.send(private_config(private_broker), notification, CONTEXT)

    assert subscriber.receive().payload == compact_json(notification.payload)


@pytest.mark.parametrize(
    "credentials",
    [{"username": USERNAME, "password": "wrong-" + PASSWORD}, {"username": None, "password": None}],
    ids=["wrong password", "anonymous"],
)
def test_refused_credentials_are_permanent(private_broker, sender, tenant_id, credentials):
    with pytest.raises(PermanentError, match="refused the connection: Not authorized"):
        sender.send(private_config(private_broker, **credentials), notification_for(tenant_id), CONTEXT)


def test_tls_with_the_trusted_ca_file_delivers(private_broker, sender, subscribe, tenant_id):
    subscriber = subscribe(private_broker.plain_port, f"pulse-test/{tenant_id}/#", username=USERNAME, password=PASSWORD)
    config = private_config(private_broker, port=private_broker.tls_port, tls=True, ca_file=str(private_broker.ca_file))
    notification = notification_for(tenant_id)

    sender.send(config, notification, trusting(private_broker.ca_file.parent))

    assert subscriber.receive().payload == compact_json(notification.payload)


def test_tls_with_the_ca_given_as_pem_text_delivers(private_broker, sender, subscribe, tenant_id):
    subscriber = subscribe(private_broker.plain_port, f"pulse-test/{tenant_id}/#", username=USERNAME, password=PASSWORD)
    config = private_config(private_broker, port=private_broker.tls_port, tls=True, ca_pem=private_broker.ca_file.read_text())
    notification = notification_for(tenant_id)

    sender.send(config, notification, CONTEXT)

    assert subscriber.receive().payload == compact_json(notification.payload)


def test_tls_with_verification_off_delivers_to_an_untrusted_certificate(private_broker, sender, subscribe, tenant_id):
    subscriber = subscribe(private_broker.plain_port, f"pulse-test/{tenant_id}/#", username=USERNAME, password=PASSWORD)
    config = private_config(private_broker, port=private_broker.tls_port, tls=True, verify_tls=False)

    sender.send(config, notification_for(tenant_id), CONTEXT)

    assert subscriber.receive().topic.startswith(f"pulse-test/{tenant_id}/")


def test_tls_certificate_from_an_unknown_ca_is_permanent(private_broker, sender, tenant_id):
    config = private_config(private_broker, port=private_broker.tls_port, tls=True)

    with pytest.raises(PermanentError, match="TLS certificate of .* cannot be verified.*ca_file"):
        sender.send(config, notification_for(tenant_id), CONTEXT)


def test_tls_to_a_plain_listener_is_transient(private_broker, sender, tenant_id):
    config = private_config(private_broker, tls=True, ca_file=str(private_broker.ca_file))

    with pytest.raises(TransientError, match="is the port a TLS listener"):
        sender.send(config, notification_for(tenant_id), trusting(private_broker.ca_file.parent))


@pytest.mark.parametrize("content", [None, b"not a certificate"], ids=["missing", "not PEM"])
def test_unusable_ca_file_is_permanent(private_broker, sender, tmp_path, tenant_id, content):
    ca_file = tmp_path / "ca.pem"
    if content is not None:
        ca_file.write_bytes(content)
    config = private_config(private_broker, port=private_broker.tls_port, tls=True, ca_file=str(ca_file))

    with pytest.raises(PermanentError, match="ca_file"):
        sender.send(config, notification_for(tenant_id), trusting(tmp_path))


@pytest.mark.parametrize(
    "failure",
    ["wrong password", "broker not listening", "untrusted certificate", "tls to plain listener"],
)
def test_no_error_message_contains_the_password(private_broker, sender, tenant_id, failure):
    password = {"wrong password": "wrong-" + PASSWORD}.get(failure, PASSWORD)
    overrides = {
        "wrong password": {},
        "broker not listening": {"port": free_port()},
        "untrusted certificate": {"port": private_broker.tls_port, "tls": True},
        "tls to plain listener": {"tls": True},
    }[failure]
    config = private_config(private_broker, password=password, **overrides)

    with pytest.raises((TransientError, PermanentError)) as raised:
        sender.send(config, notification_for(tenant_id), CONTEXT)

    assert PASSWORD not in str(raised.value)
    assert PASSWORD not in repr(raised.value.args)
