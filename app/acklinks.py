"""Acknowledge links (DESIGN §6a): signed, expiring tokens naming a tenant, an alert and a channel.

A link is `{PUBLIC_URL}/ack/<token>`. The token is signed with a key itsdangerous derives
from `SECRET_KEY` and this purpose's own salt, so it is no API bearer token (those are JWTs
signed with the key itself) and no bearer token is one of these. It carries its purpose and
its expiry, 7 days after the event it was sent for; the same event on the same channel always
gets the same link, on every attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from itsdangerous import BadSignature, URLSafeSerializer

PURPOSE = "ack"
SALT = "pulse.acknowledge-link"
LIFETIME = timedelta(days=7)


class InvalidLink(Exception):
    """A token that is not genuine, not an acknowledge link, or expired."""


@dataclass(frozen=True)
class AckClaim:
    """What a genuine, unexpired link names."""

    tenant_id: str
    alert_id: int
    channel_id: int

    @property
    def actor(self) -> str:
        """Who acknowledges through this link (the alert's `acknowledged_by`)."""
        return f"link:{self.channel_id}"


class AckLinks:
    """Makes and checks acknowledge links."""

    def __init__(self, secret_key: str, public_url: str):
        self._serializer = URLSafeSerializer(secret_key, salt=SALT)
        self.public_url = public_url.rstrip("/")

    def token(self, tenant_id: str, alert_id: int, channel_id: int, event_at: datetime) -> str:
        expires = int((event_at + LIFETIME).timestamp())
        return self._serializer.dumps({"purpose": PURPOSE, "t": tenant_id, "a": alert_id, "c": channel_id, "exp": expires})

    def url(self, tenant_id: str, alert_id: int, channel_id: int, event_at: datetime) -> str:
        """The link of one event on one channel."""
        return f"{self.public_url}/ack/{self.token(tenant_id, alert_id, channel_id, event_at)}"

    def read(self, token: str, now: datetime | None = None) -> AckClaim:
        """The claim of a genuine link that has not expired at `now`; InvalidLink otherwise."""
        now = now or datetime.now(timezone.utc)
        try:
            data = self._serializer.loads(token)
        except (BadSignature, ValueError, TypeError):
            raise InvalidLink("this acknowledge link is not genuine") from None
        if not isinstance(data, dict) or data.get("purpose") != PURPOSE:
            raise InvalidLink("this is not an acknowledge link")
        try:
            claim = AckClaim(str(data["t"]), int(data["a"]), int(data["c"]))
            expires = int(data["exp"])
        except (KeyError, TypeError, ValueError):
            raise InvalidLink("this acknowledge link is not genuine") from None
        if now.timestamp() >= expires:
            raise InvalidLink("this acknowledge link has expired")
        return claim
