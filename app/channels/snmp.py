"""SNMP traps: one SNMPv2-Trap per notification, SNMPv2c (community) or SNMPv3 (USM).

The trap is `<oid_prefix>.0.1` with the varbinds `<oid_prefix>.1.1` .. `.1.7`: alert_id,
device_id, tenant_id, severity (Integer32), message, event_type and triggered_at, the others
UTF-8 strings. pysnmp puts `sysUpTime.0` and `snmpTrapOID.0` first, as RFC 3416 §4.2.6
requires. `mibs/PULSE-ALERT-MIB.txt` describes them under the default prefix
1.3.6.1.4.1.99999 (99999 is not a registered enterprise number; sites with their own set
`oid_prefix`). A trap is unconfirmed UDP: success means the datagram was handed to the
network, not that a receiver accepted it.

pysnmp 7 is asyncio-only: `send()` runs one coroutine to completion on its thread's own
event loop and engine (`app.channels.snmp_engines`).

SNMPv3 traps are sent by Pulse as the authoritative engine, so the receiver must be told
Pulse's engine id (Net-SNMP: `createUser -e 0x<engine_id> <username> ...`). `v3.engine_id`
defaults to `DEFAULT_ENGINE_ID`. Several threads, processes and hosts send as that one engine,
and a receiver drops messages whose engine boots or time run backwards (RFC 3414 §3.2.7;
Net-SNMP's snmptrapd does so silently), so every engine reports boots 1 and the seconds since
a fixed epoch as its engine time, which all senders with synchronised clocks agree on.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    NotificationType,
    ObjectIdentity,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
    send_notification,
    usmAesBlumenthalCfb256Protocol,
    usmAesCfb128Protocol,
    usmDESPrivProtocol,
    usmHMAC192SHA256AuthProtocol,
    usmHMAC384SHA512AuthProtocol,
    usmHMACMD5AuthProtocol,
    usmHMACSHAAuthProtocol,
)
from pysnmp.proto.rfc1902 import Integer32, OctetString

from app.channels.base import ChannelConfig, Notification, SendContext, Sender, SendResult
from app.channels.deadline import Deadline
from app.channels.errors import PermanentError, TransientError, redact
from app.channels.network import Host, resolve
from app.channels.snmp_engines import engine_for, thread_resources

DEFAULT_OID_PREFIX = "1.3.6.1.4.1.99999"

# RFC 3411 SnmpEngineID format 4 (text) under enterprise 99999: 80 01 86 9f, 04, "pulse".
DEFAULT_ENGINE_ID = "8001869f0470756c7365"


AUTH_PROTOCOLS = {
    "MD5": usmHMACMD5AuthProtocol,
    "SHA": usmHMACSHAAuthProtocol,
    "SHA256": usmHMAC192SHA256AuthProtocol,
    "SHA512": usmHMAC384SHA512AuthProtocol,
}

# AES256 is the key extension of draft-blumenthal-aes-usm-04, what Net-SNMP 5.9 calls
# "AES-256". pysnmp's `usmAesCfb256Protocol` is the Reeder extension (Net-SNMP "AES256C",
# Cisco's variant); the two only differ when the authentication hash is shorter than the
# 32-byte key, i.e. with MD5 or SHA.
PRIV_PROTOCOLS = {
    "DES": usmDESPrivProtocol,
    "AES": usmAesCfb128Protocol,
    "AES256": usmAesBlumenthalCfb256Protocol,
}

# Spellings users bring from Net-SNMP and vendor manuals, mapped to the canonical names.
PROTOCOL_SPELLINGS = {"SHA1": "SHA", "AES128": "AES"}

# Octet limits of the varbinds, as PULSE-ALERT-MIB declares them (SnmpAdminString is
# SIZE (0..255); the message is PulseAlertText, SIZE (0..1024), so a trap fits one datagram).
TEXT_LIMIT = 255
MESSAGE_LIMIT = 1024


_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_HEX = re.compile(r"^[0-9a-f]*$")


def _protocol_name(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    name = value.strip().upper().replace("-", "").replace("_", "")
    return PROTOCOL_SPELLINGS.get(name, name)


class SnmpV3Config(ChannelConfig):
    """The USM user a version 3 trap is sent as: noAuthNoPriv, authNoPriv or authPriv."""

    username: str = Field(min_length=1, max_length=32)
    auth_protocol: Literal["MD5", "SHA", "SHA256", "SHA512"] | None = None
    auth_key: str | None = Field(default=None, min_length=8, max_length=256)
    priv_protocol: Literal["DES", "AES", "AES256"] | None = None
    priv_key: str | None = Field(default=None, min_length=8, max_length=256)
    engine_id: str = DEFAULT_ENGINE_ID

    @field_validator("auth_protocol", "priv_protocol", mode="before")
    @classmethod
    def _canonical_protocol(cls, value: Any) -> Any:
        return _protocol_name(value)

    @field_validator("engine_id", mode="before")
    @classmethod
    def _engine_id(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip().lower().removeprefix("0x")
        if not _HEX.match(text) or len(text) % 2:
            raise ValueError("engine_id must be hexadecimal octets, e.g. 8000000001020304")
        if not 5 <= len(text) // 2 <= 32:
            raise ValueError("engine_id must be 5 to 32 octets long (RFC 3411)")
        if set(text) in ({"0"}, {"f"}):
            raise ValueError("engine_id may not be all zeros or all 'ff' octets (RFC 3411)")
        return text

    @model_validator(mode="after")
    def _security_level(self) -> "SnmpV3Config":
        if self.auth_key and not self.auth_protocol:
            raise ValueError("v3.auth_protocol is required with v3.auth_key (MD5, SHA, SHA256 or SHA512)")
        if self.auth_protocol and not self.auth_key:
            raise ValueError("v3.auth_key is required with v3.auth_protocol")
        if self.priv_key and not self.priv_protocol:
            raise ValueError("v3.priv_protocol is required with v3.priv_key (DES, AES or AES256)")
        if self.priv_protocol and not self.priv_key:
            raise ValueError("v3.priv_key is required with v3.priv_protocol")
        if self.priv_protocol and not self.auth_protocol:
            raise ValueError("v3 privacy (priv_protocol, priv_key) requires authentication (auth_protocol, auth_key)")
        return self

    @property
    def security_level(self) -> str:
        if self.priv_protocol:
            return "authPriv"
        return "authNoPriv" if self.auth_protocol else "noAuthNoPriv"


class SnmpConfig(ChannelConfig):
    """Where traps go and how they are secured: `community` for 2c, `v3` for version 3."""

    host: Host
    port: int = Field(default=162, ge=1, le=65535)
    version: Literal["2c", "3"] = "2c"
    community: str | None = Field(default=None, min_length=1, max_length=255)
    oid_prefix: str = DEFAULT_OID_PREFIX
    v3: SnmpV3Config | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str):
            return value.strip().lower().removeprefix("v")
        return value

    @field_validator("oid_prefix", mode="before")
    @classmethod
    def _oid_prefix(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        oid = value.strip().removeprefix(".")
        if not _OID.match(oid):
            raise ValueError("oid_prefix must be a dotted OID such as 1.3.6.1.4.1.99999")
        arcs = [int(arc) for arc in oid.split(".")]
        if arcs[0] < 2 and arcs[1] >= 40:
            raise ValueError("oid_prefix: the second arc under 0 or 1 must be below 40")
        if any(arc > 0xFFFFFFFF for arc in arcs):
            raise ValueError("oid_prefix: every arc must fit in 32 bits")
        if len(arcs) > 126:
            raise ValueError("oid_prefix may have at most 126 arcs (an OID has at most 128)")
        return oid

    @model_validator(mode="after")
    def _credentials_for_version(self) -> "SnmpConfig":
        if self.version == "2c" and not self.community:
            raise ValueError("community is required for version 2c")
        if self.version == "3" and self.v3 is None:
            raise ValueError("v3 (at least v3.username) is required for version 3")
        return self


def _octets(value: Any, limit: int) -> bytes:
    """UTF-8 text cut to `limit` octets at a character boundary; None is empty."""
    data = ("" if value is None else str(value)).encode("utf-8")
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", "ignore").encode("utf-8")


def trap_varbinds(oid_prefix: str, payload: dict[str, Any]) -> list[tuple[str, Any]]:
    """The seven varbinds of a Pulse trap, in PULSE-ALERT-MIB's order."""
    objects = f"{oid_prefix}.1"
    return [
        (f"{objects}.1", OctetString(_octets(payload.get("alert_id"), TEXT_LIMIT))),
        (f"{objects}.2", OctetString(_octets(payload.get("device_id"), TEXT_LIMIT))),
        (f"{objects}.3", OctetString(_octets(payload.get("tenant_id"), TEXT_LIMIT))),
        (f"{objects}.4", Integer32(int(payload.get("severity") or 0))),
        (f"{objects}.5", OctetString(_octets(payload.get("message"), MESSAGE_LIMIT))),
        (f"{objects}.6", OctetString(_octets(payload.get("event_type"), TEXT_LIMIT))),
        (f"{objects}.7", OctetString(_octets(payload.get("triggered_at"), TEXT_LIMIT))),
    ]


class _ResolvedUdpTarget(UdpTransportTarget):
    """An IPv4 target whose address `_resolve()` has already looked up."""

    async def _resolve_address(self, transportAddr: tuple) -> tuple:
        # pysnmp would look the address up again through the loop's default executor, a thread
        # pool of its own per loop (whose threads are greenlets under gevent monkey-patching).
        return transportAddr


class _ResolvedUdp6Target(Udp6TransportTarget):
    """An IPv6 target whose address `_resolve()` has already looked up."""

    async def _resolve_address(self, transportAddr: tuple) -> tuple:
        return transportAddr


_TargetType = type[_ResolvedUdpTarget] | type[_ResolvedUdp6Target]


def _resolve(host: str, port: int, deadline: Deadline) -> tuple[_TargetType, tuple]:
    """pysnmp's transport type and the address to send to; TransientError if unresolvable."""
    infos = resolve(host, port, deadline, kind=socket.SOCK_DGRAM, what=f"SNMP host {host}")
    # IPv4 first, as SNMP managers conventionally listen there ("localhost" may list ::1 first).
    for family, target_type in ((socket.AF_INET, _ResolvedUdpTarget), (socket.AF_INET6, _ResolvedUdp6Target)):
        for info in infos:
            if info[0] == family:
                return target_type, info[4]
    raise TransientError(f"cannot resolve SNMP host {host}")


def _check_route(target_type: type, address: tuple, destination: str) -> None:
    """Fail now if the kernel would drop the datagram: pysnmp's asyncio transport swallows it."""
    family = socket.AF_INET6 if target_type is _ResolvedUdp6Target else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            # A UDP connect() sends nothing: it only looks the destination up in the routing table.
            probe.connect(address)
        except PermissionError:
            raise PermanentError(
                f"the system does not permit sending to {destination} (a broadcast address?)"
            ) from None
        except OSError as exc:
            raise TransientError(f"no route to SNMP host {destination}: {exc.strerror or exc}") from None


def _target_tag(*parts: Any) -> str:
    # pysnmp selects a trap's targets by tag: one tag per distinct destination and security
    # setting keeps two channels from ever receiving each other's traps.
    return "pulse" + hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()[:24]


def _credentials(config: SnmpConfig, address: tuple) -> tuple[str, CommunityData | UsmUserData, str]:
    """The engine id, pysnmp's credentials and the target tag for one send."""
    if config.version == "2c":
        tag = _target_tag("2c", config.community, address)
        return DEFAULT_ENGINE_ID, CommunityData(tag, config.community, mpModel=1), tag
    v3 = config.v3
    assert v3 is not None
    user = UsmUserData(
        v3.username,
        authKey=v3.auth_key,
        privKey=v3.priv_key,
        authProtocol=AUTH_PROTOCOLS[v3.auth_protocol] if v3.auth_protocol else None,
        privProtocol=PRIV_PROTOCOLS[v3.priv_protocol] if v3.priv_protocol else None,
    )
    return v3.engine_id, user, _target_tag("3", v3.username, v3.security_level, address)


async def _send_trap(
    engine_id: str,
    credentials: CommunityData | UsmUserData,
    tag: str,
    target_type: _TargetType,
    address: tuple,
    trap_oid: str,
    varbinds: list[tuple[str, Any]],
) -> Any:
    engine = engine_for(engine_id)
    # A trap is never answered, so the target's timeout and retries are never used.
    target = await target_type.create(address, timeout=1, retries=0, tagList=tag)
    notification = NotificationType(ObjectIdentity(trap_oid)).add_varbinds(*varbinds)
    error_indication, _, _, _ = await send_notification(
        engine, credentials, target, ContextData(), "trap", notification, lookupMib=False
    )
    return error_indication


def _secrets(config: SnmpConfig) -> list[str | None]:
    """The values of the channel's secret fields, to keep out of error texts."""
    if config.v3 is None:
        return [config.community]
    return [config.community, config.v3.auth_key, config.v3.priv_key]


class SnmpSender(Sender):
    """Send one SNMPv2-Trap describing the alert event to an SNMP manager."""

    channel_type = "snmp"
    config_model = SnmpConfig
    secret_fields = ("community", "v3.auth_key", "v3.priv_key")

    def send(self, config: SnmpConfig, notification: Notification, context: SendContext) -> SendResult:
        destination = f"{config.host}:{config.port}"
        try:
            varbinds = trap_varbinds(config.oid_prefix, notification.payload)
        except (TypeError, ValueError) as exc:
            raise PermanentError(f"cannot build the SNMP trap: {exc}") from None
        with Deadline(context.timeout) as deadline:
            target_type, address = _resolve(config.host, config.port, deadline)
            _check_route(target_type, address, destination)
            engine_id, credentials, tag = _credentials(config, address)
            error_indication = self._run(
                _send_trap(engine_id, credentials, tag, target_type, address, f"{config.oid_prefix}.0.1", varbinds),
                config,
                destination,
                deadline,
            )
        if error_indication:
            raise TransientError(redact(f"SNMP trap to {destination} failed: {error_indication}", _secrets(config)))
        return SendResult(detail=f"SNMPv{config.version} trap sent to {destination} (unconfirmed UDP)")

    @staticmethod
    def _run(trap: Any, config: SnmpConfig, destination: str, deadline: Deadline) -> Any:
        """The trap coroutine, run on this thread's loop for the time that remains."""
        try:
            return thread_resources().loop.run_until_complete(asyncio.wait_for(trap, deadline.remaining()))
        except asyncio.TimeoutError:
            raise TransientError(f"SNMP trap to {destination} timed out after {deadline.seconds:g} s") from None
        except PySnmpError as exc:
            raise TransientError(redact(f"SNMP trap to {destination} failed: {exc}", _secrets(config))) from None
        except OSError as exc:
            raise TransientError(f"SNMP trap to {destination} failed: {exc.strerror or exc}") from None
