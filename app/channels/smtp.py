"""The SMTP client of the email channel: one bounded dialogue, and what its failures mean.

`SmtpClient` (and `SmtpOverTls` for implicit TLS) is smtplib's client connecting within the
attempt's deadline, which then watches the connection through STARTTLS and the whole
dialogue. `classify_failure()` maps what smtplib, ssl and the socket raise to the sender
contract: SMTP 4xx replies and network trouble are transient, 5xx replies permanent.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from typing import Any

from app.channels.deadline import Deadline, run_within
from app.channels.errors import DeliveryError, PermanentError, TransientError
from app.channels.http import excerpt
from app.channels.network import connection_error, open_connection


class SmtpClient(smtplib.SMTP):
    """smtplib's client, connecting within the attempt's deadline (which then watches the
    connection), and keeping the server's answer to DATA, which `sendmail()` checks but does
    not return."""

    data_reply: tuple[int, bytes] | None = None

    def __init__(self, host: str, port: int, deadline: Deadline, **options: Any):
        # Set before smtplib connects, which it does in its constructor.
        self.deadline = deadline
        super().__init__(host, port, **options)

    def _get_socket(self, host, port, timeout):
        return open_connection(host, port, self.deadline, what=f"SMTP server {host}")

    def data(self, msg):
        reply = super().data(msg)
        self.data_reply = reply
        return reply


class SmtpOverTls(smtplib.SMTP_SSL, SmtpClient):
    """Implicit TLS: SMTP_SSL wraps the connection `SmtpClient` opens."""

    def __init__(self, host: str, port: int, deadline: Deadline, **options: Any):
        self.deadline = deadline
        smtplib.SMTP_SSL.__init__(self, host, port, **options)


_host_names: dict[str, str] = {}


def _fqdn() -> str:
    # What smtplib says in EHLO when given no name (smtplib.SMTP.__init__).
    name = socket.getfqdn()
    if "." in name:
        return name
    try:
        return f"[{socket.gethostbyname(socket.gethostname())}]"
    except OSError:
        return "[127.0.0.1]"


def ehlo_name(deadline: Deadline) -> str:
    """This host's name for EHLO, looked up once per process within a deadline.

    smtplib would look it up for every connection, without a bound (a reverse lookup can take
    as long as the resolver likes).
    """
    name = _host_names.get("fqdn")
    if name is None:
        try:
            name = _host_names["fqdn"] = run_within(deadline, "the lookup of this host's name", _fqdn)
        except TimeoutError:
            return "[127.0.0.1]"
    return name


def close_quietly(client: smtplib.SMTP) -> None:
    # The attempt's outcome is already decided (the message was accepted, or an error is on its
    # way up); a failing QUIT must not turn a delivered message into a retry.
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def reply_text(text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return excerpt(text)


def refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address} ({code} {reply_text(text)})" for address, (code, text) in refused.items())


def _reply_error(code: int, text: bytes | str, where: str, doing: str) -> DeliveryError:
    message = f"{where} answered {code} {reply_text(text)} {doing}".strip()
    if 400 <= code < 500:
        return TransientError(message, status_code=code)
    return PermanentError(message, status_code=code)


def timed_out(where: str, deadline: Deadline) -> TransientError:
    return TransientError(f"{where} did not answer within {deadline.seconds:g} s (the bound of the whole dialogue)")


def classify_failure(exc: Exception, where: str, timeout: float) -> DeliveryError | None:
    """Map what smtplib, ssl and socket raise to the contract: SMTP 4xx and network trouble retry."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        message = f"{where} refused every recipient: {refusals(exc.recipients)}"
        codes = [code for code, _ in exc.recipients.values()]
        # One recipient worth retrying makes the attempt worth retrying: nobody got the message yet.
        if any(400 <= code < 500 for code in codes):
            return TransientError(message, status_code=min(codes))
        return PermanentError(message, status_code=max(codes))
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        doing = "to the login (check smtp.username and smtp.password)"
        return _reply_error(exc.smtp_code, exc.smtp_error, where, doing)
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return _reply_error(exc.smtp_code, exc.smtp_error, where, f"to the sender {exc.sender}")
    if isinstance(exc, smtplib.SMTPDataError):
        return _reply_error(exc.smtp_code, exc.smtp_error, where, "to the message")
    if isinstance(exc, smtplib.SMTPConnectError):
        return _reply_error(exc.smtp_code, exc.smtp_error, where, "instead of its greeting")
    if isinstance(exc, smtplib.SMTPResponseException):
        if exc.smtp_code < 0:
            return PermanentError(f"{where} answered something that is not SMTP")
        return _reply_error(exc.smtp_code, exc.smtp_error, where, "")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        # smtplib reports a read that timed out as a disconnection; the timeout is the cause.
        if isinstance(exc.__context__, TimeoutError):
            return TransientError(f"{where} did not answer within {timeout:g} s")
        return TransientError(f"{where} closed the connection unexpectedly")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return PermanentError(f"{where} does not support what Pulse needs: {exc}")
    if isinstance(exc, smtplib.SMTPException):
        return PermanentError(f"{where}: {exc}")
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return TransientError(f"{where} closed the connection during the TLS handshake")
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLCertVerificationError):
        # TLS spoken to a plain port (or the reverse) fails the same way every time.
        return PermanentError(
            f"TLS with {where} failed ({exc.reason or exc.strerror}); check that smtp.security matches the port"
        )
    if isinstance(exc, OSError):
        return connection_error(
            exc, where, timeout, trust_hint="set smtp.ca_pem (or smtp.ca_file) to the CA that issued it, or smtp.verify_tls to false"
        )
    return None
