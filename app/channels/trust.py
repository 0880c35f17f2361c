"""Whom a channel's TLS trusts, and the one builder of client TLS contexts.

A tenant names the CAs its SMTP server or MQTT broker is signed by in one of two ways
(DESIGN §7):

* `ca_pem`: the PEM text of the certificates, checked when the channel is saved (a text that
  is not PEM certificates is a 422 naming the field) and handed to OpenSSL from memory;
* `ca_file`: a PEM file inside `TRUSTED_CA_DIR`, a directory the operator fills; without that
  setting `ca_file` is refused.

Nothing a tenant writes can make Pulse read a path outside `TRUSTED_CA_DIR`, or block on one:
the path is resolved (symlinks followed) and must lie inside the directory; it is opened
without following a final symlink and without blocking (a FIFO opens at once instead of
waiting for a writer); the open descriptor must be a regular file of at most
`CA_FILE_MAX_BYTES` (checked on the descriptor, so the file cannot be swapped meanwhile); and
Pulse reads it into memory and gives OpenSSL the text. OpenSSL never opens a path. The file is
checked when the channel is saved and read again at every send, so a file replaced since is
caught too.
"""

from __future__ import annotations

import os
import re
import ssl
import stat
from pathlib import Path
from typing import Annotated

from cryptography import x509
from pydantic import AfterValidator, Field, ValidationInfo

from app.channels.base import validation_settings
from app.channels.errors import PermanentError
from app.config import DeliverySettings

CA_FILE_MAX_BYTES = 1024 * 1024
CA_PEM_MAX_CHARACTERS = 256 * 1024

_PEM_LABEL = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")


def pem_certificates(text: str) -> str:
    """PEM text that holds certificates and nothing else; ValueError says what is wrong."""
    labels = set(_PEM_LABEL.findall(text))
    if not labels:
        raise ValueError("is not PEM text: paste the CA certificates, -----BEGIN CERTIFICATE----- and all")
    others = sorted(labels - {"CERTIFICATE"})
    if others:
        # A private key pasted here by mistake would be stored and shown like any setting.
        raise ValueError(f"must hold CERTIFICATE blocks only, not {', '.join(others)}")
    try:
        x509.load_pem_x509_certificates(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise ValueError("holds a CERTIFICATE block that is not a valid certificate") from None
    return text


def read_ca_file(path: str, trusted_dir: str | None) -> str:
    """The PEM text of a CA file inside `trusted_dir`; ValueError says why it cannot be used."""
    if not trusted_dir:
        raise ValueError("needs TRUSTED_CA_DIR to be set on the Pulse servers; use ca_pem with the certificates instead")
    if not os.path.isabs(path):
        raise ValueError("must be an absolute path to a PEM file inside TRUSTED_CA_DIR")
    root = Path(trusted_dir).resolve()
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(root) or resolved == root:
        raise ValueError(f"{path} is not a file inside TRUSTED_CA_DIR ({root})")
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
    try:
        descriptor = os.open(resolved, flags)
    except OSError as exc:
        raise ValueError(f"{path} cannot be opened: {exc.strerror or type(exc).__name__}") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if status.st_size > CA_FILE_MAX_BYTES:
            raise ValueError(f"{path} is larger than {CA_FILE_MAX_BYTES // 1024} KiB")
        data = _read_at_most(descriptor, CA_FILE_MAX_BYTES + 1)
    finally:
        os.close(descriptor)
    if len(data) > CA_FILE_MAX_BYTES:
        raise ValueError(f"{path} is larger than {CA_FILE_MAX_BYTES // 1024} KiB")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not PEM text") from None
    try:
        return pem_certificates(text)
    except ValueError as exc:
        raise ValueError(f"{path} {exc}") from None


def _read_at_most(descriptor: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(descriptor, limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _checked_ca_file(path: str, info: ValidationInfo) -> str:
    """`ca_file` as configured: an absolute path; a readable PEM file inside TRUSTED_CA_DIR
    when the settings are known (channel create and update pass them)."""
    if not os.path.isabs(path):
        raise ValueError("ca_file must be an absolute path to a PEM file inside TRUSTED_CA_DIR")
    settings = validation_settings(info)
    if settings is not None:
        read_ca_file(path, settings.trusted_ca_dir)
    return path


CaPem = Annotated[str, Field(min_length=1, max_length=CA_PEM_MAX_CHARACTERS), AfterValidator(pem_certificates)]
CaFile = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_checked_ca_file)]


def client_context(
    settings: DeliverySettings,
    *,
    verify: bool = True,
    ca_pem: str | None = None,
    ca_file: str | None = None,
    field_prefix: str = "",
) -> ssl.SSLContext:
    """A client TLS context: the system's CAs, or only the channel's own, or no verification.

    PermanentError names the field (`<field_prefix>ca_file`) whose CAs cannot be used.
    """
    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cadata = ca_pem
    if cadata is None and ca_file is not None:
        try:
            cadata = read_ca_file(ca_file, settings.trusted_ca_dir)
        except ValueError as exc:
            raise PermanentError(f"{field_prefix}ca_file cannot be used: {exc}") from None
    try:
        return ssl.create_default_context(cadata=cadata) if cadata else ssl.create_default_context()
    except ssl.SSLError as exc:
        field = f"{field_prefix}ca_pem" if ca_pem is not None else f"{field_prefix}ca_file"
        raise PermanentError(f"{field} cannot be loaded as CA certificates: {exc.reason or exc}") from None
