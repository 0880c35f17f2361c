"""The SNMP channel against a real Net-SNMP snmptrapd, which logs every trap it accepts.

One snmptrapd, started here on a free UDP port of 127.0.0.1 and ::1, knows a v2c community and
one SNMPv3 user per supported protocol pair; authorization is on (no disableAuthorization), so
a trap with a wrong community, key or engine id is dropped, as in production, and the sender
cannot tell. Each test marks its traps with an alert id of its own and finds them in the log.
A dropped trap is observed by sending a good "marker" trap right after it: snmptrapd handles
datagrams in order, so once the marker is logged the trap before it has been dropped.
"""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pyasn1.codec.ber import decoder as ber_decoder
from pydantic import ValidationError

from app.channels.base import Notification, SendContext
from app.channels.errors import PermanentError, TransientError
from app.channels.snmp import DEFAULT_ENGINE_ID, DEFAULT_OID_PREFIX, SnmpConfig, SnmpSender
from app.channels.snmp_engines import ENGINE_TIME_EPOCH, ENGINES_PER_THREAD
from app.config import DeliverySettings
from tests.snmptrapd import TrapReceiver

CONTEXT = SendContext(DeliverySettings(allow_private_destinations=True, timeout_seconds=3))
SENDER = SnmpSender()

COMMUNITY = "pulse-test-community-4b1d"
AUTH_KEY = "auth-key-5e2a9c71"
PRIV_KEY = "priv-key-0d8f3b64"
CUSTOM_ENGINE_ID = "80000000c0ffee0102"

V3_AUTH_PRIV = {
    "username": "u",
    "auth_protocol": "SHA",
    "auth_key": AUTH_KEY,
    "priv_protocol": "AES",
    "priv_key": PRIV_KEY,
}

SYS_UP_TIME = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"

# username -> (auth protocol, priv protocol, engine id) as Pulse spells them.
V3_USERS = {
    "pulse-sha-aes": ("SHA", "AES", DEFAULT_ENGINE_ID),
    # SHA-1 with AES-256 is the pair where Blumenthal and Reeder key extension differ.
    "pulse-sha-aes256": ("SHA", "AES256", CUSTOM_ENGINE_ID),
    "pulse-sha256-aes256": ("SHA256", "AES256", DEFAULT_ENGINE_ID),
    "pulse-sha512-aes256": ("SHA512", "AES256", DEFAULT_ENGINE_ID),
    "pulse-md5-des": ("MD5", "DES", DEFAULT_ENGINE_ID),
    "pulse-sha-noprivacy": ("SHA", None, DEFAULT_ENGINE_ID),
    "pulse-md5-aes256": ("MD5", "AES256", DEFAULT_ENGINE_ID),
    # Accepted with authentication alone or with privacy too.
    "pulse-any-level": ("SHA", "AES", DEFAULT_ENGINE_ID),
}
MINIMUM_LEVEL = {"pulse-sha-noprivacy": "auth", "pulse-any-level": "auth"}
NET_SNMP_NAMES = {
    "SHA": "SHA",
    "SHA256": "SHA-256",
    "SHA512": "SHA-512",
    "MD5": "MD5",
    "AES": "AES",
    "AES256": "AES-256",
    "DES": "DES",
}

ROOT = Path(__file__).resolve().parent.parent

_alert_ids = itertools.count(7000)

# The web process may run under gevent monkey-patching and send from gevent's native threads.
GEVENT_SENDER = """
from gevent import monkey

monkey.patch_all()

import json
import sys

import gevent
from gevent import get_hub

from app.channels.base import Notification, SendContext
from app.channels.snmp import SnmpConfig, SnmpSender
from app.config import DeliverySettings

configs = [SnmpConfig.model_validate(config) for config in json.loads(sys.argv[1])]
context = SendContext(DeliverySettings(timeout_seconds=3))


def send(number, payload):
    notification = Notification(payload, message_id=f"test-{payload['alert_id']}")
    config = configs[number % len(configs)]
    return get_hub().threadpool.spawn(SnmpSender().send, config, notification, context).get()


payloads = json.loads(sys.argv[2])
gevent.joinall([gevent.spawn(send, number, payload) for number, payload in enumerate(payloads)], raise_error=True)
"""


def receiver_configuration() -> list[str]:
    lines = [f"authCommunity log {COMMUNITY}"]
    for username, (auth, priv, engine_id) in V3_USERS.items():
        privacy = f" {NET_SNMP_NAMES[priv]} {PRIV_KEY}" if priv else ""
        lines.append(f"createUser -e 0x{engine_id} {username} {NET_SNMP_NAMES[auth]} {AUTH_KEY}{privacy}")
        lines.append(f"authUser log {username} {MINIMUM_LEVEL.get(username, 'priv')}")
    return lines


@pytest.fixture(scope="module")
def receiver(tmp_path_factory) -> TrapReceiver:
    trap_receiver = TrapReceiver(
        tmp_path_factory.mktemp("snmptrapd"),
        receiver_configuration(),
        listen=("udp:127.0.0.1:{port}", "udp6:[::1]:{port}"),
    )
    yield trap_receiver
    trap_receiver.stop()


def payload(alert_id: int, **overrides) -> dict:
    values = {
        "alert_id": alert_id,
        "alert_type": "temperature_high",
        "severity": 4,
        "severity_label": "CRITICAL",
        "device_id": "sensor-12",
        "site_id": "site-north",
        "tenant_id": "tenant-acme",
        "message": "Temperature 81.5 above 75",
        "details": {"value": 81.5, "threshold": 75},
        "triggered_at": "2025-03-01T12:00:00+00:00",
        "event_type": "OPEN",
        "job_id": 99,
    }
    values.update(overrides)
    return values


def v2c_config(receiver: TrapReceiver, **overrides) -> SnmpConfig:
    return SnmpConfig.model_validate(
        {"host": "127.0.0.1", "port": receiver.port, "version": "2c", "community": COMMUNITY, **overrides}
    )


def v3_config(receiver: TrapReceiver, username: str, **overrides) -> SnmpConfig:
    auth, priv, engine_id = V3_USERS[username]
    v3 = {"username": username, "auth_protocol": auth, "auth_key": AUTH_KEY}
    if priv:
        v3.update(priv_protocol=priv, priv_key=PRIV_KEY)
    if engine_id != DEFAULT_ENGINE_ID:
        v3["engine_id"] = engine_id
    v3.update(overrides)
    return SnmpConfig.model_validate({"host": "127.0.0.1", "port": receiver.port, "version": "3", "v3": v3})


def send(config: SnmpConfig, alert_id: int, **overrides):
    return SENDER.send(config, Notification(payload(alert_id, **overrides), message_id=f"job-{alert_id}"), CONTEXT)


def trap_for(receiver: TrapReceiver, alert_id: int, prefix: str = DEFAULT_OID_PREFIX):
    marker = str(alert_id).encode()
    return receiver.wait_for(lambda trap: trap.get(f"{prefix}.1.1") == marker, f"alert id {alert_id}")


def logged_count(receiver: TrapReceiver, alert_id: int) -> int:
    marker = str(alert_id).encode()
    return sum(1 for trap in receiver.traps() if trap.get(f"{DEFAULT_OID_PREFIX}.1.1") == marker)


def expected_varbinds(alert_id: int, prefix: str = DEFAULT_OID_PREFIX, **overrides) -> list[tuple[str, str, object]]:
    values = payload(alert_id, **overrides)
    return [
        (SNMP_TRAP_OID, "OID", f"{prefix}.0.1"),
        (f"{prefix}.1.1", "STRING", str(alert_id).encode()),
        (f"{prefix}.1.2", "STRING", values["device_id"].encode()),
        (f"{prefix}.1.3", "STRING", values["tenant_id"].encode()),
        (f"{prefix}.1.4", "INTEGER", values["severity"]),
        (f"{prefix}.1.5", "STRING", values["message"].encode()),
        (f"{prefix}.1.6", "STRING", values["event_type"].encode()),
        (f"{prefix}.1.7", "STRING", values["triggered_at"].encode()),
    ]


def assert_trap_carries(trap, alert_id: int, prefix: str = DEFAULT_OID_PREFIX, **overrides) -> None:
    oid, kind, _ = trap.varbinds[0]
    assert (oid, kind) == (SYS_UP_TIME, "Timeticks"), "sysUpTime.0 must be the first varbind"
    assert list(trap.varbinds[1:]) == expected_varbinds(alert_id, prefix, **overrides)


# Delivery


def test_v2c_trap_carries_sys_up_time_trap_oid_and_the_seven_alert_varbinds(receiver):
    alert_id = next(_alert_ids)

    result = send(v2c_config(receiver), alert_id)

    assert_trap_carries(trap_for(receiver, alert_id), alert_id)
    assert result.detail == f"SNMPv2c trap sent to 127.0.0.1:{receiver.port} (unconfirmed UDP)"


@pytest.mark.parametrize("username", list(V3_USERS))
def test_v3_trap_is_decrypted_and_logged_by_net_snmp(receiver, username):
    alert_id = next(_alert_ids)

    send(v3_config(receiver, username), alert_id)

    assert_trap_carries(trap_for(receiver, alert_id), alert_id)


def test_test_send_carries_event_type_test(receiver):
    alert_id = next(_alert_ids)

    send(v2c_config(receiver), alert_id, event_type="TEST", job_id=None)

    assert trap_for(receiver, alert_id).value(f"{DEFAULT_OID_PREFIX}.1.6") == b"TEST"


def test_custom_oid_prefix_moves_the_trap_oid_and_every_varbind(receiver):
    alert_id = next(_alert_ids)
    prefix = "1.3.6.1.4.1.8072.9999.42"

    send(v2c_config(receiver, oid_prefix=prefix), alert_id)

    assert_trap_carries(trap_for(receiver, alert_id, prefix), alert_id, prefix)


def test_utf8_text_arrives_as_utf8_octets(receiver):
    alert_id = next(_alert_ids)
    message = "Température 81,5 °C – capteur Nord"

    send(v2c_config(receiver), alert_id, message=message, device_id="capteur-été")

    trap = trap_for(receiver, alert_id)
    assert trap.value(f"{DEFAULT_OID_PREFIX}.1.5") == message.encode("utf-8")
    assert trap.value(f"{DEFAULT_OID_PREFIX}.1.2") == "capteur-été".encode("utf-8")


@pytest.mark.parametrize(
    ("field", "column", "limit"),
    [("message", 5, 1024), ("device_id", 2, 255), ("tenant_id", 3, 255), ("triggered_at", 7, 255)],
)
def test_long_text_is_cut_to_the_mib_size_at_a_character_boundary(receiver, field, column, limit):
    alert_id = next(_alert_ids)
    # One octet short of the limit, then a two-octet character that does not fit.
    text = "a" * (limit - 1) + "é" + "tail"

    send(v2c_config(receiver), alert_id, **{field: text})

    assert trap_for(receiver, alert_id).value(f"{DEFAULT_OID_PREFIX}.1.{column}") == b"a" * (limit - 1)


def test_missing_optional_text_is_sent_as_an_empty_string(receiver):
    alert_id = next(_alert_ids)

    send(v2c_config(receiver), alert_id, triggered_at=None)

    assert trap_for(receiver, alert_id).value(f"{DEFAULT_OID_PREFIX}.1.7") == b""


def test_ipv6_host_receives_the_trap(receiver):
    alert_id = next(_alert_ids)

    send(v2c_config(receiver, host="::1"), alert_id)

    assert trap_for(receiver, alert_id).transport.startswith("UDP/IPv6")


def test_host_name_is_resolved(receiver):
    alert_id = next(_alert_ids)

    send(v3_config(receiver, "pulse-sha-aes").model_copy(update={"host": "localhost"}), alert_id)

    assert_trap_carries(trap_for(receiver, alert_id), alert_id)


def test_one_user_at_two_security_levels_sends_each_trap_once(receiver):
    authenticated, private, marker = next(_alert_ids), next(_alert_ids), next(_alert_ids)
    without_privacy = v3_config(receiver, "pulse-any-level", priv_protocol=None, priv_key=None)

    send(without_privacy, authenticated)
    send(v3_config(receiver, "pulse-any-level"), private)
    send(v2c_config(receiver), marker)

    trap_for(receiver, marker)
    assert [logged_count(receiver, alert_id) for alert_id in (authenticated, private)] == [1, 1]


def test_sends_from_many_threads_all_arrive(receiver):
    alert_ids = [next(_alert_ids) for _ in range(24)]
    configs = [v3_config(receiver, "pulse-sha-aes"), v2c_config(receiver), v3_config(receiver, "pulse-sha-aes256")]

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda pair: send(configs[pair[0] % len(configs)], pair[1]), enumerate(alert_ids)))

    for alert_id in alert_ids:
        assert_trap_carries(trap_for(receiver, alert_id), alert_id)


def test_v3_traps_from_an_older_thread_still_arrive_after_a_newer_thread_sent(receiver):
    # Each thread has its own engine for one engine id; a receiver drops a trap whose engine
    # boots or time lag behind what it has seen from that engine id (RFC 3414 §3.2.7).
    older, newer = ThreadPoolExecutor(max_workers=1), ThreadPoolExecutor(max_workers=1)
    config = v3_config(receiver, "pulse-sha-aes")
    first, second, third = next(_alert_ids), next(_alert_ids), next(_alert_ids)
    try:
        older.submit(send, config, first).result()
        newer.submit(send, config, second).result()
        older.submit(send, config, third).result()
    finally:
        older.shutdown()
        newer.shutdown()

    for alert_id in (first, second, third):
        assert_trap_carries(trap_for(receiver, alert_id), alert_id)


def test_engine_evicted_from_a_threads_cache_is_rebuilt_and_its_traps_still_arrive(receiver):
    before, after = next(_alert_ids), next(_alert_ids)
    config = v3_config(receiver, "pulse-sha-aes")
    # Traps as engines the receiver does not know push the first engine out of the cache.
    strangers = [
        SnmpConfig(
            host="127.0.0.1", port=receiver.port, version="3", v3={"username": "u", "engine_id": f"80000000ee{n:04x}"}
        )
        for n in range(ENGINES_PER_THREAD)
    ]

    def run() -> None:
        send(config, before)
        for stranger in strangers:
            send(stranger, next(_alert_ids))
        send(config, after)

    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(run).result()

    for alert_id in (before, after):
        assert_trap_carries(trap_for(receiver, alert_id), alert_id)


def test_v3_trap_reports_engine_boots_1_and_seconds_since_the_epoch_as_engine_time():
    # Every thread, process and host sending as one engine id must agree on boots and time.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(5)
        config = SnmpConfig(host="127.0.0.1", port=peer.getsockname()[1], version="3", v3=V3_AUTH_PRIV)

        send(config, next(_alert_ids))
        datagram, _ = peer.recvfrom(65535)

    # SNMPv3Message (RFC 3412 §6): version, global data, security parameters, scoped PDU;
    # UsmSecurityParameters (RFC 3414 §2.4): engine id, boots, time, user name, ...
    message, _ = ber_decoder.decode(datagram)
    security, _ = ber_decoder.decode(bytes(message[2]))
    expected_time = time.time() - ENGINE_TIME_EPOCH
    assert (int(message[0]), bytes(security[0]).hex(), int(security[1])) == (3, DEFAULT_ENGINE_ID, 1)
    assert abs(int(security[2]) - expected_time) < 5


def test_sends_from_gevent_native_threads_under_monkey_patching_all_arrive(receiver):
    alert_ids = [next(_alert_ids) for _ in range(40)]
    # A host name makes the first sends of the threads overlap: each waits for its lookup.
    configs = [v3_config(receiver, "pulse-sha-aes"), v2c_config(receiver, host="localhost")]

    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            GEVENT_SENDER,
            json.dumps([config.model_dump() for config in configs]),
            json.dumps([payload(alert_id) for alert_id in alert_ids]),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert completed.returncode == 0, completed.stderr
    for alert_id in alert_ids:
        assert_trap_carries(trap_for(receiver, alert_id), alert_id)


# Traps the receiver must drop


@pytest.mark.parametrize(
    "wrong",
    [
        {"auth_key": "not-the-auth-key"},
        {"priv_key": "not-the-priv-key"},
        {"engine_id": "80000000deadbeef"},
        {"priv_protocol": "DES"},
    ],
    ids=["auth-key", "priv-key", "engine-id", "priv-protocol"],
)
def test_v3_trap_with_wrong_credentials_is_dropped_by_the_receiver(receiver, wrong):
    dropped, marker = next(_alert_ids), next(_alert_ids)

    # Net-SNMP drops it (logging only "Authentication failed"); the unconfirmed trap looks sent.
    send(v3_config(receiver, "pulse-sha-aes", **wrong), dropped)
    send(v3_config(receiver, "pulse-sha-aes"), marker)

    trap_for(receiver, marker)
    assert logged_count(receiver, dropped) == 0


def test_v2c_trap_with_wrong_community_is_dropped_by_the_receiver(receiver):
    dropped, marker = next(_alert_ids), next(_alert_ids)

    send(v2c_config(receiver, community="not-the-community"), dropped)
    send(v2c_config(receiver), marker)

    trap_for(receiver, marker)
    assert logged_count(receiver, dropped) == 0


# Failures


def test_unresolvable_host_is_transient():
    config = SnmpConfig(host="no-such-host.invalid", community=COMMUNITY)

    with pytest.raises(TransientError, match="cannot resolve SNMP host no-such-host.invalid"):
        SENDER.send(config, Notification(payload(1), message_id="job-1"), CONTEXT)


def test_broadcast_destination_is_permanent():
    config = SnmpConfig(host="255.255.255.255", community=COMMUNITY)

    with pytest.raises(PermanentError, match="does not permit sending to 255.255.255.255:162"):
        SENDER.send(config, Notification(payload(1), message_id="job-1"), CONTEXT)


def test_payload_with_a_non_numeric_severity_is_permanent(receiver):
    with pytest.raises(PermanentError, match="cannot build the SNMP trap"):
        send(v2c_config(receiver), next(_alert_ids), severity="very high")


@pytest.mark.parametrize(
    "config",
    [
        {"host": "no-such-host.invalid", "version": "2c", "community": COMMUNITY},
        {"host": "255.255.255.255", "version": "2c", "community": COMMUNITY},
        {"host": "no-such-host.invalid", "version": "3", "v3": V3_AUTH_PRIV},
        {"host": "255.255.255.255", "version": "3", "v3": V3_AUTH_PRIV},
    ],
    ids=["v2c-unresolvable", "v2c-broadcast", "v3-unresolvable", "v3-broadcast"],
)
def test_no_secret_appears_in_an_error_message(config):
    with pytest.raises((TransientError, PermanentError)) as failure:
        SENDER.send(SnmpConfig.model_validate(config), Notification(payload(1), message_id="job-1"), CONTEXT)

    for secret in (COMMUNITY, AUTH_KEY, PRIV_KEY):
        assert secret not in str(failure.value)


# Configuration


def test_secret_fields_are_the_community_and_the_v3_keys():
    assert SnmpSender.secret_fields == ("community", "v3.auth_key", "v3.priv_key")


def test_defaults_are_port_162_version_2c_and_the_pulse_prefix():
    config = SnmpConfig.model_validate({"host": "traps.example.net", "community": COMMUNITY})

    assert (config.port, config.version, config.oid_prefix, config.v3) == (162, "2c", "1.3.6.1.4.1.99999", None)


def test_v3_engine_id_defaults_to_the_documented_pulse_engine_id():
    config = SnmpConfig.model_validate({"host": "h", "version": "3", "v3": {"username": "u"}})

    assert config.v3.engine_id == DEFAULT_ENGINE_ID == "8001869f0470756c7365"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"version": "v3"}, {"version": "3"}),
        ({"version": 3}, {"version": "3"}),
        ({"oid_prefix": ".1.3.6.1.4.1.8072"}, {"oid_prefix": "1.3.6.1.4.1.8072"}),
        ({"host": "[::1]"}, {"host": "::1"}),
        ({"v3": {"username": "u", "auth_protocol": "sha-256", "auth_key": AUTH_KEY}}, {"v3.auth_protocol": "SHA256"}),
        ({"v3": {"username": "u", "auth_protocol": "SHA1", "auth_key": AUTH_KEY}}, {"v3.auth_protocol": "SHA"}),
        ({"v3": V3_AUTH_PRIV | {"priv_protocol": "aes-256"}}, {"v3.priv_protocol": "AES256"}),
        ({"v3": V3_AUTH_PRIV | {"priv_protocol": "AES128"}}, {"v3.priv_protocol": "AES"}),
        ({"v3": {"username": "u", "engine_id": "0x80000000C0FFEE01"}}, {"v3.engine_id": "80000000c0ffee01"}),
    ],
)
def test_config_spellings_are_normalised(given, expected):
    config = SnmpConfig.model_validate(
        {"host": "h", "version": "3", "community": COMMUNITY, "v3": {"username": "u"}, **given}
    )

    for path, value in expected.items():
        target = config
        for name in path.split("."):
            target = getattr(target, name)
        assert target == value


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"community": COMMUNITY}, "host"),
        ({"host": "", "community": COMMUNITY}, "host"),
        ({"host": "udp://traps.example.net", "community": COMMUNITY}, "host"),
        ({"host": "traps example", "community": COMMUNITY}, "host"),
        ({"host": "traps.example.net:162", "community": COMMUNITY}, "host"),
        ({"host": "h", "port": 0, "community": COMMUNITY}, "port"),
        ({"host": "h", "port": 65536, "community": COMMUNITY}, "port"),
        ({"host": "h", "version": "1", "community": COMMUNITY}, "version"),
        ({"host": "h", "version": "2c"}, "community"),
        ({"host": "h", "community": ""}, "community"),
        ({"host": "h", "version": "3"}, "v3"),
        ({"host": "h", "version": "3", "v3": {}}, "username"),
        ({"host": "h", "version": "3", "v3": {"username": "u" * 33}}, "username"),
        ({"host": "h", "community": COMMUNITY, "oid_prefix": "1.3.6.1.4.1.abc"}, "oid_prefix"),
        ({"host": "h", "community": COMMUNITY, "oid_prefix": "1.3.6.1.4.1.99999."}, "oid_prefix"),
        ({"host": "h", "community": COMMUNITY, "oid_prefix": "3.1.2"}, "oid_prefix"),
        ({"host": "h", "community": COMMUNITY, "oid_prefix": "1.40.1"}, "oid_prefix"),
        ({"host": "h", "community": COMMUNITY, "oid_prefix": "1"}, "oid_prefix"),
        ({"host": "h", "community": COMMUNITY, "oid_prefix": "1.3.6.1.4.1.4294967296"}, "oid_prefix"),
        ({"host": "h", "community": COMMUNITY, "communty": "typo"}, "communty"),
        ({"host": "h", "version": "3", "v3": V3_AUTH_PRIV | {"auth_protocol": "SHA224"}}, "auth_protocol"),
        ({"host": "h", "version": "3", "v3": V3_AUTH_PRIV | {"priv_protocol": "3DES"}}, "priv_protocol"),
        ({"host": "h", "version": "3", "v3": V3_AUTH_PRIV | {"auth_key": "short"}}, "auth_key"),
        ({"host": "h", "version": "3", "v3": V3_AUTH_PRIV | {"priv_key": "short"}}, "priv_key"),
        ({"host": "h", "version": "3", "v3": {"username": "u", "auth_key": AUTH_KEY}}, "auth_protocol"),
        ({"host": "h", "version": "3", "v3": {"username": "u", "auth_protocol": "SHA"}}, "auth_key"),
        (
            {
                "host": "h",
                "version": "3",
                "v3": {"username": "u", "auth_protocol": "SHA", "auth_key": AUTH_KEY, "priv_key": PRIV_KEY},
            },
            "priv_protocol",
        ),
        (
            {
                "host": "h",
                "version": "3",
                "v3": {"username": "u", "auth_protocol": "SHA", "auth_key": AUTH_KEY, "priv_protocol": "AES"},
            },
            "priv_key",
        ),
        (
            {"host": "h", "version": "3", "v3": {"username": "u", "priv_protocol": "AES", "priv_key": PRIV_KEY}},
            "requires authentication",
        ),
        ({"host": "h", "version": "3", "v3": {"username": "u", "engine_id": "xyz"}}, "engine_id"),
        ({"host": "h", "version": "3", "v3": {"username": "u", "engine_id": "80000001"}}, "engine_id"),
        ({"host": "h", "version": "3", "v3": {"username": "u", "engine_id": "8000000001020"}}, "engine_id"),
        ({"host": "h", "version": "3", "v3": {"username": "u", "engine_id": "0000000000"}}, "engine_id"),
        ({"host": "h", "version": "3", "v3": {"username": "u", "engine_id": "80" * 33}}, "engine_id"),
        ({"host": "h", "version": "3", "v3": V3_AUTH_PRIV | {"context": "x"}}, "context"),
    ],
)
def test_invalid_config_is_rejected_naming_the_field(config, field):
    with pytest.raises(ValidationError) as failure:
        SnmpConfig.model_validate(config)

    assert field in str(failure.value)


def test_thread_keeps_one_event_loop_across_sends(receiver):
    from app.channels import snmp_engines

    loops = []

    def send_and_record(alert_id: int) -> None:
        send(v2c_config(receiver), alert_id)
        loops.append(snmp_engines.thread_resources().loop)

    worker = threading.Thread(target=lambda: [send_and_record(next(_alert_ids)) for _ in range(3)])
    worker.start()
    worker.join()

    assert len(loops) == 3 and loops[0] is loops[1] is loops[2]
