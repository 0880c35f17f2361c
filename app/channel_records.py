"""Deleting a notification channel without deleting its history.

A deleted channel keeps its row, marked `deleted_at` and disabled: its jobs and their delivery
log stay readable under `/deliveries` (what was sent where, and what failed, is the audit
trail an operator needs most after a channel is gone). Everything else treats it as gone:
the API answers 404 for it and leaves it out of lists, a rule cannot name it, no event
creates a job for it, a job still waiting for it fails permanently ("the channel was
deleted") when its turn comes, and its dead letters cannot be replayed (409).
"""

from __future__ import annotations

from sqlalchemy import Select, delete, select
from sqlalchemy.orm import Session

from app.models import NotificationChannel, RoutingRule, utcnow


def retire_channel(session: Session, channel: NotificationChannel) -> None:
    """Delete `channel` softly, and the routing rules that send to it (they could match nothing now)."""
    now = utcnow()
    channel.deleted_at = now
    channel.is_enabled = False
    channel.updated_at = now
    session.execute(
        delete(RoutingRule)
        .where(RoutingRule.tenant_id == channel.tenant_id, RoutingRule.channel_id == channel.channel_id)
        .execution_options(synchronize_session=False)
    )
    session.flush()


def deleted_channels(tenant_id: str) -> Select:
    """The ids of `tenant_id`'s deleted channels, as a subquery."""
    return select(NotificationChannel.channel_id).where(
        NotificationChannel.tenant_id == tenant_id, NotificationChannel.deleted_at.is_not(None)
    )
