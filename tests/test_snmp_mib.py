"""PULSE-ALERT-MIB: valid SMIv2 (smilint), and it names exactly what the SNMP sender sends.

The module imports the IETF base modules (SNMPv2-SMI, SNMPv2-TC, SNMPv2-CONF,
SNMP-FRAMEWORK-MIB). Debian's Net-SNMP and libsmi packages leave them out (their licence is
not DFSG-free); in Debian main they come with erlang-snmp, or from snmp-mibs-downloader in
non-free. A Net-SNMP snmptrapd loaded with the module turns a trap from Pulse's sender into
names, which shows that the MIB and the sender agree on every OID and type.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from app.channels.base import Notification, SendContext
from app.channels.snmp import DEFAULT_OID_PREFIX, MESSAGE_LIMIT, TEXT_LIMIT, SnmpConfig, SnmpSender, trap_varbinds
from app.config import DeliverySettings
from tests.snmptrapd import TrapReceiver, find_binary

MIB_DIRECTORY = Path(__file__).resolve().parent.parent / "mibs"
MODULE = "PULSE-ALERT-MIB"
BASE_MODULES = ("SNMPv2-SMI", "SNMPv2-TC", "SNMPv2-CONF", "SNMP-FRAMEWORK-MIB", "SNMPv2-MIB")
BASE_MODULE_DIRECTORIES = (
    Path("/usr/share/snmp/mibs/ietf"),
    Path("/var/lib/mibs/ietf"),
    Path("/usr/share/mibs/ietf"),
    *sorted(Path("/usr/lib/erlang/lib").glob("snmp-*/mibs")),
)
COMMUNITY = "pulse-mib-test-community"

# The objects in the order of the sender's varbinds.
OBJECTS = [
    "pulseAlertId",
    "pulseAlertDeviceId",
    "pulseAlertTenantId",
    "pulseAlertSeverity",
    "pulseAlertMessage",
    "pulseAlertEventType",
    "pulseAlertTriggeredAt",
]


def _holds_module(directory: Path, module: str) -> bool:
    return any((directory / (module + extension)).is_file() for extension in ("", ".txt", ".mib", ".my"))


@pytest.fixture(scope="module")
def base_modules() -> Path:
    """A directory holding the IETF base modules the MIB imports."""
    for directory in BASE_MODULE_DIRECTORIES:
        if all(_holds_module(directory, module) for module in BASE_MODULES):
            return directory
    pytest.fail(
        f"the IETF base MIB modules {', '.join(BASE_MODULES)} are not installed: "
        "apt-get install erlang-snmp (Debian main ships them there)",
        pytrace=False,
    )


def snmptranslate(base_modules: Path, *arguments: str) -> str:
    command = [find_binary("snmptranslate", "snmp"), "-M", f"{base_modules}:{MIB_DIRECTORY}", "-m", MODULE, *arguments]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert completed.returncode == 0 and not completed.stderr, completed.stderr
    return completed.stdout


def test_smilint_reports_no_error_or_warning(base_modules):
    smilint = find_binary("smilint", "smitools")
    environment = {**os.environ, "SMIPATH": f"{base_modules}:{MIB_DIRECTORY}"}

    completed = subprocess.run(
        [smilint, "-l", "9", str(MIB_DIRECTORY / f"{MODULE}.txt")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=30,
    )

    assert (completed.returncode, completed.stdout + completed.stderr) == (0, "")


def test_notification_resolves_to_the_trap_oid_the_sender_uses(base_modules):
    assert (
        snmptranslate(base_modules, "-On", f"{MODULE}::pulseAlertNotification").strip() == f".{DEFAULT_OID_PREFIX}.0.1"
    )


@pytest.mark.parametrize(("position", "name"), list(enumerate(OBJECTS)))
def test_object_resolves_to_the_oid_of_the_senders_varbind(base_modules, position, name):
    sent_oid = trap_varbinds(DEFAULT_OID_PREFIX, {"severity": 1})[position][0]

    assert snmptranslate(base_modules, "-On", f"{MODULE}::{name}").strip() == f".{sent_oid}"


def test_notification_lists_the_seven_objects_in_the_order_they_are_sent(base_modules):
    description = snmptranslate(base_modules, "-Td", f"{MODULE}::pulseAlertNotification")

    objects = re.search(r"OBJECTS\s*\{([^}]*)\}", description).group(1)
    assert [name.strip() for name in objects.split(",")] == OBJECTS


@pytest.mark.parametrize(
    ("name", "syntax"),
    [
        ("pulseAlertId", f"OCTET STRING (0..{TEXT_LIMIT})"),
        ("pulseAlertDeviceId", f"OCTET STRING (0..{TEXT_LIMIT})"),
        ("pulseAlertTenantId", f"OCTET STRING (0..{TEXT_LIMIT})"),
        ("pulseAlertSeverity", "Integer32 (0..5)"),
        ("pulseAlertMessage", f"OCTET STRING (0..{MESSAGE_LIMIT})"),
        ("pulseAlertEventType", f"OCTET STRING (0..{TEXT_LIMIT})"),
        ("pulseAlertTriggeredAt", f"OCTET STRING (0..{TEXT_LIMIT})"),
    ],
)
def test_object_syntax_bounds_what_the_sender_sends(base_modules, name, syntax):
    description = snmptranslate(base_modules, "-Td", f"{MODULE}::{name}")

    assert re.search(r"SYNTAX\s+(.*?)\s*$", description, re.MULTILINE).group(1) == syntax
    assert re.search(r"MAX-ACCESS\s+(\S+)", description).group(1) == "accessible-for-notify"


@pytest.fixture(scope="module")
def named_receiver(tmp_path_factory, base_modules) -> TrapReceiver:
    """snmptrapd that loads the MIB and logs names instead of numeric OIDs."""
    receiver = TrapReceiver(
        tmp_path_factory.mktemp("snmptrapd-mib"),
        [f"authCommunity log {COMMUNITY}"],
        mib_modules=f"SNMPv2-MIB:{MODULE}",
        mib_directories=[base_modules, MIB_DIRECTORY],
        numeric_oids=False,
    )
    yield receiver
    receiver.stop()


def test_snmptrapd_loaded_with_the_mib_names_every_varbind_of_a_pulse_trap(named_receiver):
    payload = {
        "alert_id": 9001,
        "alert_type": "temperature_high",
        "severity": 3,
        "severity_label": "HIGH",
        "device_id": "sensor-12",
        "site_id": "site-north",
        "tenant_id": "tenant-acme",
        "message": "Température 81,5 °C",
        "details": {},
        "triggered_at": "2025-03-01T12:00:00+00:00",
        "event_type": "ACKNOWLEDGED",
        "job_id": 7,
    }
    config = SnmpConfig(host="127.0.0.1", port=named_receiver.port, community=COMMUNITY)
    context = SendContext(DeliverySettings(allow_private_destinations=True, timeout_seconds=3))

    SnmpSender().send(config, Notification(payload, message_id="job-7"), context)

    trap = named_receiver.wait_for(lambda trap: trap.get(f"{MODULE}::pulseAlertId") == b"9001", "pulseAlertId 9001")
    assert trap.oids[0] == "SNMPv2-MIB::sysUpTime.0"
    assert list(trap.varbinds[1:]) == [
        ("SNMPv2-MIB::snmpTrapOID.0", "OID", f"{MODULE}::pulseAlertNotification"),
        (f"{MODULE}::pulseAlertId", "STRING", b"9001"),
        (f"{MODULE}::pulseAlertDeviceId", "STRING", b"sensor-12"),
        (f"{MODULE}::pulseAlertTenantId", "STRING", b"tenant-acme"),
        (f"{MODULE}::pulseAlertSeverity", "INTEGER", 3),
        (f"{MODULE}::pulseAlertMessage", "STRING", "Température 81,5 °C".encode("utf-8")),
        (f"{MODULE}::pulseAlertEventType", "STRING", b"ACKNOWLEDGED"),
        (f"{MODULE}::pulseAlertTriggeredAt", "STRING", b"2025-03-01T12:00:00+00:00"),
    ]
