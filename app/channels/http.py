"""The one HTTP client every HTTP-based channel uses, and the one classifier of its outcomes.

`send_http()` makes one request (urllib3, a keep-alive pool per process) that:

* connects only to addresses the SSRF policy allows (`app.channels.destinations`): every
  address the host resolves to is checked first, and only a checked address is connected to,
  so a DNS answer that changes in between cannot slip past the check;
* is bounded as a whole by `DELIVERY_TIMEOUT_SECONDS`: resolution, connection, TLS, request
  and response (`app.channels.deadline`); a receiver that trickles its answer ends as a
  transient timeout, and at most `MAX_RESPONSE_BYTES` of an answer are read;
* never follows redirects and ignores proxy variables of the environment;
* names only the scheme and host of the destination in errors (a Slack or Teams URL is a
  secret), and blanks the caller's secrets out of any answer it quotes: a receiver, or a
  proxy's error page, may quote the request's path, headers or body back.

`classify()` maps an HTTP status to the contract: 2xx ok; 408, 429 and 5xx transient (with
`Retry-After` honoured); any other status permanent.
"""

from __future__ import annotations

import codecs
import email.utils
import http.client
import json
import os
import socket
import ssl
import time
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timezone
from typing import Any, Callable, ClassVar, Iterable, Mapping
from urllib.parse import urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from app.channels.base import Notification, SendContext, Sender, SendResult
from app.channels.deadline import Deadline
from app.channels.destinations import DestinationRefused, describe, numeric_host, refusal_reason
from app.channels.errors import DeliveryError, PermanentError, TransientError, redact
from app.channels.network import connection_error, open_connection

# What is read of an answer at most: enough for any error text worth quoting.
MAX_RESPONSE_BYTES = 64 * 1024

# Keep-alive connections kept per destination host; more may be open at once.
CONNECTIONS_PER_HOST = 8


@dataclass(frozen=True)
class HttpAnswer:
    """What a receiver answered: status, headers, and the text of at most 64 KiB of body."""

    status: int
    headers: Mapping[str, str]
    text: str


@dataclass(frozen=True)
class _Attempt:
    """The request in flight on this thread, for the connections urllib3 opens or reuses."""

    deadline: Deadline
    allow_private: bool
    service: str
    where: str


_attempt: ContextVar[_Attempt] = ContextVar("pulse_http_attempt")


class _BoundedConnectionMixin:
    """Connections that resolve, check and connect within the attempt's deadline."""

    def _new_conn(self) -> socket.socket:
        attempt = _attempt.get()
        host = str(numeric_host(self._dns_host) or self._dns_host)

        def check(address: str) -> None:
            reason = refusal_reason(address, allow_private=attempt.allow_private)
            if reason:
                raise DestinationRefused(f"destination {self.host} refused: it is {reason}")

        try:
            sock = open_connection(host, self.port, attempt.deadline, check=check, socket_options=self.socket_options or ())
        except OSError as exc:
            raise _unreachable(exc, attempt) from None
        self._pulse_deadline = attempt.deadline
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        # A kept-alive connection is watched by each attempt that reuses it.
        deadline = _attempt.get().deadline
        if self.sock is not None and getattr(self, "_pulse_deadline", None) is not deadline:
            deadline.watch(self.sock)
            self._pulse_deadline = deadline
        super().request(*args, **kwargs)


class _HTTPConnection(_BoundedConnectionMixin, HTTPConnection):
    pass


class _HTTPSConnection(_BoundedConnectionMixin, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_pools: dict[tuple[int, bool], urllib3.PoolManager] = {}


def _pool(allow_private: bool) -> urllib3.PoolManager:
    """The process's pool for a guard mode; a forked child makes its own."""
    key = (os.getpid(), allow_private)
    pool = _pools.get(key)
    if pool is None:
        pool = urllib3.PoolManager(num_pools=64, maxsize=CONNECTIONS_PER_HOST, block=False, retries=False)
        pool.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        pool = _pools.setdefault(key, pool)
    return pool


def _unreachable(exc: OSError, attempt: _Attempt) -> DeliveryError:
    if isinstance(exc, TimeoutError) or attempt.deadline.fired:
        return _timed_out(attempt)
    return TransientError(f"{attempt.service} at {attempt.where} unreachable: {_reason(exc)}")


def _timed_out(attempt: _Attempt) -> TransientError:
    return TransientError(f"{attempt.service} at {attempt.where} timed out after {attempt.deadline.seconds:g} s")


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


class JsonPostSender(Sender):
    """A channel type that POSTs one JSON message per notification: Slack, Teams, PagerDuty.

    A subclass names its service and says what the message is; by default it goes to the
    channel's `webhook_url`, the secret field whose path is the credential (every spelling of
    it is kept out of errors), and any 2xx answer is a success. `send()` is the same for all.
    """

    secret_fields: ClassVar[tuple[str, ...]] = ("webhook_url",)
    service: ClassVar[str]
    content_type: ClassVar[str] = "application/json"

    @property
    def user_agent(self) -> str:
        return f"Pulse-{self.service}/1.0"

    def destination(self, config: Any, context: SendContext) -> str:
        """Where the message goes."""
        return config.webhook_url

    def message(self, config: Any, notification: Notification) -> Any:
        """The JSON body for one notification."""
        raise NotImplementedError

    def secrets(self, config: Any, url: str) -> Iterable[str]:
        """What the answer or an error must never show."""
        return url_secrets(url)

    def check_answer(self, answer: HttpAnswer) -> None:
        """Refine a 2xx answer (a service that reports errors in a 200 body); success by default."""

    def send(self, config: Any, notification: Notification, context: SendContext) -> SendResult:
        url = self.destination(config, context)
        body = json.dumps(self.message(config, notification), separators=(",", ":"), default=str).encode("utf-8")
        return send_http(
            "POST",
            url,
            body=body,
            headers={"Content-Type": self.content_type, "User-Agent": self.user_agent},
            context=context,
            service=self.service,
            secrets=self.secrets(config, url),
            success_check=self.check_answer,
        )


def send_http(
    method: str,
    url: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    context: SendContext,
    service: str,
    success_check: Callable[[HttpAnswer], None] | None = None,
    secrets: Iterable[str] = (),
) -> SendResult:
    """One guarded, bounded HTTP request, classified, with `secrets` kept out of its error
    or detail.

    `success_check(answer)` may refine a 2xx (a service that reports errors in a 200 body).
    """
    secrets = tuple(secrets)
    try:
        with Deadline(context.timeout) as deadline:
            answer = _exchange(method, url, body, headers, context, service, deadline)
        classify(answer.status, answer.headers, answer.text, service)
        if success_check is not None:
            success_check(answer)
    except DeliveryError as error:
        raise error.redacted(secrets) from None
    return SendResult(status_code=answer.status, detail=redact(excerpt(answer.text, 120), secrets) or None)


def _exchange(method, url, body, headers, context: SendContext, service: str, deadline: Deadline) -> HttpAnswer:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PermanentError(f"{service}: not an http(s) URL")
    allow_private = context.settings.allow_private_destinations
    attempt = _Attempt(deadline, allow_private, service, describe(url))
    token = _attempt.set(attempt)
    try:
        response = _pool(allow_private).urlopen(
            method,
            url,
            body=body,
            # Receivers answer uncompressed: a compressed answer could expand beyond any cap.
            headers={"Accept-Encoding": "identity", **headers},
            redirect=False,
            retries=False,
            preload_content=False,
            timeout=urllib3.Timeout(connect=deadline.remaining(), read=deadline.remaining()),
        )
        try:
            data = response.read(MAX_RESPONSE_BYTES, decode_content=False)
        finally:
            if not response.closed:
                # The rest of the answer stays unread: this connection cannot serve another request.
                response.close()
            response.release_conn()
    except DeliveryError:
        raise
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
        raise _failure(exc, attempt) from None
    except ValueError as exc:
        # http.client refuses a header it cannot send (a line break in a value, say).
        raise PermanentError(f"{service} request to {attempt.where} failed: {exc}") from None
    finally:
        _attempt.reset(token)
    if deadline.fired:
        raise _timed_out(attempt)
    return HttpAnswer(response.status, response.headers, data.decode(_charset(response.headers), errors="replace"))


def _failure(exc: BaseException, attempt: _Attempt) -> DeliveryError:
    """The contract's error for a request that failed below HTTP."""
    if attempt.deadline.fired or isinstance(exc, urllib3.exceptions.TimeoutError):
        return _timed_out(attempt)
    cause = _root_os_error(exc)
    if isinstance(cause, ssl.SSLError):
        return connection_error(cause, f"{attempt.service} at {attempt.where}", attempt.deadline.seconds)
    if isinstance(cause, TimeoutError):
        return _timed_out(attempt)
    return TransientError(f"{attempt.service} at {attempt.where} unreachable: {_reason(cause or exc)}")


def _charset(headers: Mapping[str, str]) -> str:
    """The text encoding an answer declares, if Python knows it; UTF-8 otherwise."""
    for parameter in headers.get("Content-Type", "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            try:
                return codecs.lookup(value.strip().strip('"')).name
            except LookupError:
                break
    return "utf-8"


def _root_os_error(exc: BaseException | None) -> OSError | None:
    # urllib3 wraps the socket or TLS error in `reason`, its first argument, or the chain.
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and not isinstance(exc, urllib3.exceptions.HTTPError):
            return exc
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException) and exc.args and isinstance(exc.args[0], BaseException):
            inner = exc.args[0]
        exc = inner if isinstance(inner, BaseException) else (exc.__cause__ or exc.__context__)
    return None


def _reason(exc: BaseException) -> str:
    """What happened, in words that name no URL."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, (http.client.RemoteDisconnected, urllib3.exceptions.ProtocolError)):
        return "the connection was closed before an answer"
    return type(exc).__name__
