"""The two ways a send can fail, and the one redaction that keeps secrets out of their text.

The Celery task retries a `TransientError` and dead-letters a `PermanentError`. Their text
ends up in the delivery log, the worker's log and the answer of a test send, so a sender
passes every message that might quote a receiver (which may echo what it was sent) through
`redact()` or `DeliveryError.redacted()` with the channel's secrets.
"""

from __future__ import annotations

from typing import Iterable

# What a secret looks like wherever it would have appeared: answers, errors, logs (DESIGN §7).
MASK = "********"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret replaced by the mask; the longest first, so that a whole URL
    is blanked before its pieces are."""
    for secret in sorted({secret for secret in secrets if secret}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class DeliveryError(Exception):
    """A failed send. `str()` is safe to log: it never contains a secret."""

    def __init__(self, message: str, *, status_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.status_code = status_code

    def redacted(self, secrets: Iterable[str | None]) -> DeliveryError:
        """This error with `secrets` blanked out of its message (itself when none occurs)."""
        message = redact(self.message, secrets)
        if message == self.message:
            return self
        return self._with_message(message)

    def _with_message(self, message: str) -> DeliveryError:
        return type(self)(message, status_code=self.status_code)


class TransientError(DeliveryError):
    """Worth retrying: timeouts, connection errors, 408, 429, 5xx, SMTP 4xx.

    `retry_after` (seconds) is the receiver's own request, e.g. from a `Retry-After` header;
    the retry policy waits at least that long.
    """

    def __init__(self, message: str, *, status_code: int | None = None, retry_after: float | None = None):
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after

    def _with_message(self, message: str) -> DeliveryError:
        return type(self)(message, status_code=self.status_code, retry_after=self.retry_after)


class PermanentError(DeliveryError):
    """Retrying cannot help: other 4xx, a refused destination, an invalid configuration."""
