"""Channel types: the registry mapping a `channel_type` to its sender.

Adding a channel type is one module beside this one, one line in `SENDERS`, one test file.
"""

from __future__ import annotations

from app.channels.base import Notification, SendContext, Sender, SendResult
from app.channels.email import EmailSender
from app.channels.errors import DeliveryError, PermanentError, TransientError
from app.channels.mqtt import MqttSender
from app.channels.pagerduty import PagerDutySender
from app.channels.slack import SlackSender
from app.channels.snmp import SnmpSender
from app.channels.teams import TeamsSender
from app.channels.webhook import WebhookSender

SENDERS: dict[str, Sender] = {
    "webhook": WebhookSender(),
    "slack": SlackSender(),
    "pagerduty": PagerDutySender(),
    "teams": TeamsSender(),
    "email": EmailSender(),
    "snmp": SnmpSender(),
    "mqtt": MqttSender(),
}

# Other spellings accepted on input; responses always use the canonical name.
ALIASES = {"http": "webhook"}


def canonical_type(channel_type: str) -> str:
    """The registry name for a type as a user may spell it (`http` is `webhook`)."""
    return ALIASES.get(channel_type, channel_type)


def get_sender(channel_type: str) -> Sender:
    """The sender of a channel type; KeyError for an unknown one."""
    return SENDERS[canonical_type(channel_type)]


__all__ = [
    "ALIASES",
    "SENDERS",
    "DeliveryError",
    "Notification",
    "PermanentError",
    "SendContext",
    "SendResult",
    "Sender",
    "TransientError",
    "canonical_type",
    "get_sender",
]
