"""How a failed connection maps to the sender contract, for every channel type.

One policy for socket and TLS failures, whatever the protocol on top:

* an untrusted certificate is permanent: a person must fix the trust (a CA file, a renewed
  certificate) and replay; retrying for hours would only delay the dead-letter signal;
* any other TLS failure, a timeout, a refused connection, a name that does not resolve, or any
  other socket error is transient.

Callers say where they were connecting to and may add a hint about their own configuration.
"""

from __future__ import annotations

import socket
import ssl

from app.channels.errors import DeliveryError, PermanentError, TransientError


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
