"""What every channel shares below its protocol: hosts, bounded connections, failures.

Hosts. `host_name()` is the one check of a host a tenant configures (an SMTP server, an SNMP
manager, an MQTT broker, the domain of an email address): a DNS name or an IP address and
nothing else, no scheme, port, path or credentials. IPv6 addresses lose their brackets and
take their short form; names are lower case ASCII, an internationalised name in its IDNA
form (`xn--...`, IDNA 2008 with the UTS 46 mapping, as email-validator uses).

Connections. `resolve()` and `open_connection()` look a host up and connect to it within an
attempt's deadline (`app.channels.deadline`): the lookup runs in a helper thread waited for no
longer than the time that remains, the connection takes the remaining time as its timeout
and is watched by the deadline until the attempt ends. A host that is an address is read as
such, with no lookup.

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
import sys
from typing import Annotated, Any, Callable, Iterable

import idna
from pydantic import AfterValidator, Field

from app.channels.deadline import Deadline, run_within
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


def _getaddrinfo() -> Callable[..., list]:
    # The C library's own lookup: it runs in a native helper thread, where gevent's
    # cooperative version (in the web process) has no hub to cooperate with.
    if "gevent.monkey" in sys.modules:
        from gevent import monkey

        if monkey.is_module_patched("socket"):
            return monkey.get_original("socket", "getaddrinfo")
    return socket.getaddrinfo


def resolve(host: str, port: int, deadline: Deadline, *, kind: int = socket.SOCK_STREAM, what: str = "") -> list:
    """getaddrinfo() for `host`, within the deadline; TransientError names `what` (or the host)."""
    what = what or host
    getaddrinfo = _getaddrinfo()
    try:
        return getaddrinfo(host, port, 0, kind, 0, socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError):
        pass
    try:
        return run_within(deadline, f"the name lookup of {host}", getaddrinfo, host, port, 0, kind)
    except TimeoutError:
        raise TransientError(f"cannot resolve {what} within {deadline.seconds:g} s") from None
    except socket.gaierror as exc:
        raise TransientError(f"cannot resolve {what}: {exc.strerror}") from None
    except UnicodeError:
        raise TransientError(f"cannot resolve {what}: not a valid host name") from None


def open_connection(
    host: str,
    port: int,
    deadline: Deadline,
    *,
    check: Callable[[str], None] | None = None,
    socket_options: Iterable[tuple[Any, ...]] = (),
    what: str = "",
) -> socket.socket:
    """A TCP connection to `host`, opened within the deadline and watched by it.

    `check(address)` sees every address the host resolves to before any connection is tried,
    and may refuse by raising; only the addresses it saw are connected to. OSError (or
    TimeoutError) when no address accepts the connection in time.
    """
    infos = resolve(host, port, deadline, what=what)
    if check is not None:
        for info in infos:
            check(info[4][0])
    failure: OSError = OSError(f"{host} has no address")
    for family, kind, protocol, _, address in infos:
        sock = socket.socket(family, kind, protocol)
        try:
            for option in socket_options:
                sock.setsockopt(*option)
            remaining = deadline.remaining()
            if remaining <= 0:
                raise TimeoutError("timed out")
            sock.settimeout(remaining)
            deadline.watch(sock)
            sock.connect(address)
            return sock
        except OSError as exc:
            failure = exc
            sock.close()
    raise failure


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
