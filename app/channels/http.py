"""The one HTTP client every HTTP-based channel uses, and the one classifier of its outcomes.

`send_http()` makes one request through a session that:

* refuses loopback, private, link-local (cloud metadata included), CGNAT, unspecified,
  multicast and reserved destinations, IPv6 and IPv4-mapped forms too, unless
  `ALLOW_PRIVATE_DESTINATIONS=1`. The host is checked when it is resolved and the peer
  address again once the socket is connected, so DNS rebinding cannot slip past the check;
* never follows redirects and ignores proxy variables of the environment;
* names only the scheme and host of the destination in errors (a Slack or Teams URL is a
  secret), and blanks the caller's secrets out of any answer it quotes: a receiver, or a
  proxy's error page, may quote the request's path or body back.

`classify()` maps an HTTP status to the contract: 2xx ok; 408, 429 and 5xx transient (with
`Retry-After` honoured); any other status permanent.
"""

from __future__ import annotations

import email.utils
import socket
import ssl
import threading
import time
from datetime import timezone
from typing import Iterable, Mapping
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from app.channels.base import SendContext, SendResult
from app.channels.destinations import DestinationRefused, describe, numeric_host, refusal_reason
from app.channels.errors import DeliveryError, PermanentError, TransientError, redact
from app.channels.network import connection_error


def _check_peer(sock: socket.socket, host: str) -> None:
    reason = refusal_reason(sock.getpeername()[0])
    if reason:
        sock.close()
        raise DestinationRefused(f"destination {host} refused: it is {reason}")


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _check_peer(sock, self.host)
        return sock


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _check_peer(sock, self.host)
        return sock


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


_local = threading.local()


def _session(guarded: bool) -> requests.Session:
    # One keep-alive session per thread and mode: requests.Session is not thread-safe.
    name = "guarded" if guarded else "open"
    session = getattr(_local, name, None)
    if session is None:
        session = requests.Session()
        session.trust_env = False
        adapter = _GuardedAdapter() if guarded else HTTPAdapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        setattr(_local, name, session)
    return session


def _check_resolved(host: str, port: int, allow_private: bool) -> None:
    numeric = numeric_host(host)
    if numeric is not None:
        reason = refusal_reason(str(numeric), allow_private=allow_private)
        if reason:
            raise DestinationRefused(f"destination {host} refused: it is {reason}")
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TransientError(f"cannot resolve {host}: {exc.strerror}") from None
    for info in infos:
        reason = refusal_reason(info[4][0], allow_private=allow_private)
        if reason:
            raise DestinationRefused(f"destination {host} refused: it resolves to {reason}")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def excerpt(text: str, limit: int = 200) -> str:
    """A receiver's answer, shortened to one line for an error message."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def classify(status: int, headers: Mapping[str, str], body: str, service: str) -> None:
    """Raise the contract's error for a non-2xx HTTP status; return for 2xx."""
    if 200 <= status < 300:
        return
    answer = f"{service} answered {status}"
    if body.strip():
        answer += f": {excerpt(body)}"
    if status in (408, 429) or status >= 500:
        raise TransientError(answer, status_code=status, retry_after=parse_retry_after(headers.get("Retry-After")))
    if 300 <= status < 400:
        raise PermanentError(f"{answer} (a redirect, not followed)", status_code=status)
    raise PermanentError(answer, status_code=status)


def url_secrets(url: str) -> tuple[str, ...]:
    """The spellings of a secret URL a receiver's answer might quote.

    The whole URL, its path and query, and each long path segment on its own: the token of a
    Slack or Teams hook is one segment, and an answer may quote just the tail of the path.
    """
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    segments = [segment for segment in parts.path.split("/") if len(segment) >= 8]
    spellings = (url, path, path.lstrip("/"), parts.query, *segments)
    # Longest first, so a whole URL is blanked before its pieces are.
    return tuple(sorted({s for s in spellings if len(s) > 1}, key=len, reverse=True))


def send_http(
    method: str,
    url: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    context: SendContext,
    service: str,
    success_check=None,
    secrets: Iterable[str] = (),
) -> SendResult:
    """One guarded HTTP request, classified, with `secrets` kept out of its error or detail.

    `success_check(response)` may refine a 2xx (a service that reports errors in a 200 body).
    """
    secrets = tuple(secrets)
    try:
        result = _send(method, url, body, headers, context, service, success_check)
    except DeliveryError as error:
        raise error.redacted(secrets) from None
    if result.detail is None or not secrets:
        return result
    return SendResult(status_code=result.status_code, detail=redact(result.detail, secrets))


def _send(method, url, body, headers, context: SendContext, service: str, success_check) -> SendResult:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PermanentError(f"{service}: not an http(s) URL")
    where = describe(url)
    guarded = not context.settings.allow_private_destinations
    _check_resolved(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), not guarded)
    try:
        response = _session(guarded).request(
            method,
            url,
            data=body,
            headers=dict(headers),
            timeout=context.timeout,
            allow_redirects=False,
        )
    except DestinationRefused:
        raise
    except requests.Timeout:
        raise TransientError(f"{service} at {where} timed out after {context.timeout:g} s") from None
    except requests.ConnectionError as exc:
        cause = _root_os_error(exc)
        if isinstance(cause, ssl.SSLError):
            raise connection_error(cause, f"{service} at {where}", context.timeout) from None
        raise TransientError(f"{service} at {where} unreachable: {_root_cause(exc)}") from None
    except requests.RequestException as exc:
        raise PermanentError(f"{service} request to {where} failed: {type(exc).__name__}") from None
    text = response.text
    classify(response.status_code, response.headers, text, service)
    if success_check is not None:
        success_check(response)
    return SendResult(status_code=response.status_code, detail=excerpt(text, 120) or None)


def _root_os_error(exc: BaseException | None) -> OSError | None:
    # requests wraps urllib3's MaxRetryError, whose `reason` (or first argument) holds the
    # socket or TLS error; older layers chain through __cause__ / __context__.
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and not isinstance(exc, requests.RequestException):
            return exc
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException) and exc.args and isinstance(exc.args[0], BaseException):
            inner = exc.args[0]
        exc = inner if isinstance(inner, BaseException) else (exc.__cause__ or exc.__context__)
    return None


def _root_cause(exc: BaseException) -> str:
    # requests wraps urllib3 wraps OSError; the innermost says what happened, the URL does not.
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    name = type(exc).__name__
    return "connection refused" if "Refused" in name else name
