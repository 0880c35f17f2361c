"""kombu's Redis transport, with one Redis client per channel instead of one per command.

kombu's Redis channel builds a new `redis.Redis` for every publish and every acknowledgement
(`Channel._create_client`), and redis-py builds its table of response callbacks anew with
each: about half a millisecond of CPU, paid two or three times per delivery. A client is
thread-safe and holds no connection of its own (the channel's pool does), so one per channel
serves every command.

`install()` registers it as kombu's `redis` transport, the one both `redis://` and
`redis+socket://` broker URLs name (kombu's own alias table, the way third-party transports
register; Celery's `broker_transport` setting cannot reach the `redis+socket` spelling).
"""

from __future__ import annotations

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    """A Redis channel that keeps the client it makes for synchronous commands."""

    _sync_client = None

    def _create_client(self, asynchronous=False):
        if asynchronous:
            return super()._create_client(asynchronous=True)
        if self._sync_client is None:
            self._sync_client = super()._create_client(asynchronous=False)
        return self._sync_client


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with `Channel` above."""

    Channel = Channel


def install() -> None:
    """Make kombu's `redis` transport this one, in this process."""
    TRANSPORT_ALIASES["redis"] = f"{__name__}:Transport"
