"""The two ways a send can fail. The Celery task retries the first and dead-letters the second."""

from __future__ import annotations


class DeliveryError(Exception):
    """A failed send. `str()` is safe to log: it never contains a secret."""

    def __init__(self, message: str, *, status_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class TransientError(DeliveryError):
    """Worth retrying: timeouts, connection errors, 408, 429, 5xx, SMTP 4xx.

    `retry_after` (seconds) is the receiver's own request, e.g. from a `Retry-After` header;
    the retry policy waits at least that long.
    """

    def __init__(self, message: str, *, status_code: int | None = None, retry_after: float | None = None):
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """Retrying cannot help: other 4xx, a refused destination, an invalid configuration."""
