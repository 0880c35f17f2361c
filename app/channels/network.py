"""What every channel shares below its protocol: destination hosts, and failed connections.

Hosts. `host_name()` is the one check of a host a tenant configures (an SMTP server, an SNMP
manager, an MQTT broker, the domain of an email address): a DNS name or an IP address and
nothing else, no scheme, port, path or credentials. IPv6 addresses lose their brackets and
take their short form; names are lower case ASCII, an internationalised name in its IDNA
form (`xn--...`, IDNA 2008 with the UTS 46 mapping, as email-validator uses).

Failures. One policy for socket and TLS failures, whatever the protocol on top:

* an untrusted certificate is permanent: a person must fix the trust (a CA, a renewed
  certificate) and replay; retrying for hours would only delay the dead-letter signal;
* any other TLS failure, a timeout, a refused connection, a name that does not resolve, or any
  other socket error is transient.

Callers say where they were connecting to and may add a hint about their own configuration.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from typing import Annotated

import idna
from pydantic import AfterValidator, Field

from app.channels.errors import DeliveryError, PermanentError, TransientError

HOST_MAX_LENGTH = 253

# A label of a host name as found on private networks: letters, digits and hyphens, and the
# underscore that Windows and container names use; internationalised labels go through IDNA.
_ASCII_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")

HOST_HINT = "must be a host name or an IP address, without scheme, port or path (e.g. mail.example.com)"


def dns_name(value: str) -> str:
    """A DNS name in lower-case ASCII; ValueError if it is not one."""
    labels = value.split(".")
    ascii_labels = []
    for label in labels:
        if label.isascii():
            label = label.lower()
        else:
            try:
                label = idna.encode(label, uts46=True).decode("ascii")
            except idna.IDNAError as exc:
                raise ValueError(f"is not a valid internationalised name ({exc})") from None
        if not _ASCII_LABEL.fullmatch(label):
            raise ValueError(HOST_HINT)
        ascii_labels.append(label)
    name = ".".join(ascii_labels)
    if len(name) > HOST_MAX_LENGTH:
        raise ValueError(f"must be at most {HOST_MAX_LENGTH} characters long")
    return name


def host_name(value: str) -> str:
    """A destination host as configured: a DNS name or an IP address; ValueError otherwise."""
    host = value.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        # Only an IPv6 address has colons; `broker:1883` is a host and a port.
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            raise ValueError(HOST_HINT) from None
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    # A fully qualified name may end in the root's dot.
    absolute = host.endswith(".") and len(host) > 1
    return dns_name(host[:-1] if absolute else host) + ("." if absolute else "")


Host = Annotated[str, Field(min_length=1, max_length=HOST_MAX_LENGTH + 2), AfterValidator(host_name)]


def connection_error(exc: OSError, where: str, timeout: float, *, trust_hint: str = "", hint: str = "") -> DeliveryError:
    """The contract's error for a connection to `where` that failed below the protocol."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        fix = f"; {trust_hint}" if trust_hint else ""
        return PermanentError(f"the TLS certificate of {where} cannot be verified ({exc.verify_message}){fix}")
    if isinstance(exc, ssl.SSLError):
        return TransientError(f"TLS with {where} failed ({exc.reason or type(exc).__name__}){hint}")
    if isinstance(exc, socket.gaierror):
        return TransientError(f"cannot resolve {where}: {exc.strerror}")
    if isinstance(exc, TimeoutError):
        return TransientError(f"{where} did not answer within {timeout:g} s{hint}")
    if isinstance(exc, ConnectionRefusedError):
        return TransientError(f"{where} refused the connection")
    return TransientError(f"{where} unreachable: {exc.strerror or type(exc).__name__}{hint}")
