"""Where HTTP-based channels may send: the address policy against SSRF (DESIGN §7).

An HTTP channel's URL is a tenant's input that Pulse's servers fetch, so the address it leads
to is checked, every time:

* when the channel is saved, a URL whose host is a literal IP address in a refused range is a
  422 (`DestinationUrl`, through the validation context's settings);
* at each send, every address the host resolves to is checked before Pulse connects, and Pulse
  connects only to an address it checked (so a DNS answer that changes between the check and
  the connection, "DNS rebinding", cannot slip through).

Refused unless `ALLOW_PRIVATE_DESTINATIONS=1`: loopback, RFC 1918, link-local, CGNAT
(100.64.0.0/10), unspecified, multicast and reserved space, IPv6 loopback, ULA and link-local.
An IPv6 address that carries an IPv4 address is judged by that IPv4 address: IPv4-mapped
(`::ffff:a.b.c.d`), 6to4 (`2002::/16`, RFC 3056) and the NAT64 well-known prefix
(`64:ff9b::/96`, RFC 6052; a NAT64 gateway forwards it to the IPv4 address). Refused always,
whatever the setting: the cloud metadata endpoints (`METADATA_ADDRESSES`), which hand out the
credentials of the machine Pulse runs on. Host spellings that the C library reads as IPv4
(`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`) are read the same way here.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, ValidationInfo

from app.channels.base import validation_settings
from app.channels.errors import PermanentError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instance metadata services, by the address each cloud documents.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer
    )
)

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_RFC1918 = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
_ULA = ipaddress.ip_network("fc00::/7")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# The numeric spellings inet_aton(3) accepts: one to four parts, each decimal, octal or hex.
_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)


class DestinationRefused(PermanentError):
    """The destination resolves to an address Pulse must not reach."""


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address stands for, and the name of the form, if it is one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    return None


def refusal_reason(address: str, *, allow_private: bool = False) -> str | None:
    """Why an IP address may not be a delivery destination, or None if it may."""
    return _reason(ipaddress.ip_address(address.split("%", 1)[0]), allow_private)


def _reason(ip: IPAddress, allow_private: bool) -> str | None:
    if ip.version == 6:
        embedded = embedded_ipv4(ip)
        if embedded is not None:
            ipv4, form = embedded
            reason = _reason(ipv4, allow_private)
            return f"{reason} in its {form} form" if reason else None
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if allow_private:
        return None
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.version == 4 and any(ip in net for net in _RFC1918):
        return "a private address (RFC 1918)"
    if ip.version == 4 and ip in _CGNAT:
        return "a shared CGNAT address (RFC 6598)"
    if ip.version == 6 and ip in _ULA:
        return "an IPv6 unique local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_reserved or ip.is_private or not ip.is_global:
        return "a reserved address"
    return None


def numeric_host(host: str) -> IPAddress | None:
    """The address a host names by itself, spelt as the C library reads it; None for a name."""
    host = host.split("%", 1)[0]
    if host.endswith(".") and not host.endswith(".."):
        host = host[:-1]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def literal_ip_refusal(url: str, *, allow_private: bool = False) -> str | None:
    """For a URL whose host is an IP address: why it would be refused; None otherwise."""
    ip = numeric_host(urlsplit(url).hostname or "")
    return None if ip is None else _reason(ip, allow_private)


def describe(url: str) -> str:
    """The part of a URL that is safe to show: scheme and host, never path or query."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def destination_url(value: str, info: ValidationInfo) -> str:
    """A URL a user gave for an HTTP channel: http(s), a host, no whitespace, and not a
    literal address that would be refused. The URL itself is never echoed (it may be a secret)."""
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http"):
        raise ValueError("must be an https:// URL (http:// is accepted for test receivers)")
    if not parts.hostname:
        raise ValueError("must name a host")
    if any(character.isspace() or not character.isprintable() for character in value):
        raise ValueError("must not contain whitespace or control characters")
    try:
        _ = parts.port  # urlsplit checks the port only when it is asked for it
    except ValueError:
        raise ValueError("has a port that is not a number from 0 to 65535") from None
    settings = validation_settings(info)
    # Without settings only the addresses refused whatever they say can be told now.
    allow_private = settings.allow_private_destinations if settings is not None else True
    reason = literal_ip_refusal(value, allow_private=allow_private)
    if reason:
        raise ValueError(f"destination refused: it is {reason}")
    return value


DestinationUrl = Annotated[str, Field(max_length=2048), AfterValidator(destination_url)]
