"""Notification channels: CRUD with write-only secrets, and POST /channels/{id}/test."""

from __future__ import annotations

import time
import uuid
from typing import Any

from flask import Blueprint
from pydantic import ValidationError
from sqlalchemy import select

from app.api.common import get_or_404, tenant_id, tenant_session
from app.api.operations import operation
from app.api.pagination import paginate
from app.api.queries import ListQuery
from app.blocking import run_blocking
from app.channel_records import retire_channel
from app.channels import (
    SENDERS,
    DeliveryError,
    Notification,
    SendContext,
    TransientError,
    canonical_type,
)
from app.models import NotificationChannel, utcnow
from app.payload import channel_test_payload
from app.problems import Problem, field_problem, validation_problem
from app.schemas import ChannelCreate, ChannelUpdate
from app.secrets import (
    channel_config,
    deep_merge,
    merge_secrets,
    restore_masked,
    split_secrets,
)
from app.views import ChannelTestResult, ChannelView, Page, channel_view
from app.web import pulse

bp = Blueprint("channels", __name__)


def _validated(channel_type: str, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public config, secrets) of a full config, or a 422 naming the bad field."""
    sender = SENDERS[channel_type]
    try:
        model = sender.validate_config(config, pulse().settings.delivery)
    except ValidationError as exc:
        raise validation_problem(exc, prefix=("config",)) from None
    return split_secrets(model.model_dump(mode="json", by_alias=True), sender.secret_fields)


def _health(channel: NotificationChannel):
    """The channel's circuit breaker, as every channel answer carries it."""
    return pulse().admission.health([channel.channel_id])[channel.channel_id]


@bp.post("/channels")
@operation(ChannelView, 201, body=ChannelCreate)
def create_channel(body: ChannelCreate):
    """Create a notification channel (secrets are write-only)"""
    channel_type = canonical_type(body.channel_type)
    if channel_type not in SENDERS:
        raise field_problem("channel_type", f"unknown channel type {body.channel_type!r}; use one of {', '.join(sorted(SENDERS))}")
    public, secrets = _validated(channel_type, body.config)
    state = pulse()
    with tenant_session() as session:
        channel = NotificationChannel(
            tenant_id=tenant_id(),
            name=body.name,
            channel_type=channel_type,
            config=public,
            encrypted_secrets=state.box.encrypt(secrets),
            is_enabled=body.is_enabled,
        )
        session.add(channel)
        session.flush()
        return channel_view(channel, state.box, _health(channel))


@bp.get("/channels")
@operation(Page[ChannelView], query=ListQuery)
def list_channels(query: ListQuery):
    """List channels, newest first (secrets masked)"""
    box = pulse().box
    with tenant_session() as session:
        stmt = select(NotificationChannel).where(NotificationChannel.tenant_id == tenant_id(), NotificationChannel.deleted_at.is_(None))
        return paginate(session, stmt, (NotificationChannel.channel_id,), lambda c: channel_view(c, box, _health(c)), query)


@bp.get("/channels/<channel_id>")
@operation(ChannelView)
def read_channel(channel_id: str):
    """Read a channel (secrets masked)"""
    with tenant_session() as session:
        channel = get_or_404(session, NotificationChannel, channel_id)
        return channel_view(channel, pulse().box, _health(channel))


@bp.patch("/channels/<channel_id>")
@operation(ChannelView, body=ChannelUpdate)
def update_channel(channel_id: str, body: ChannelUpdate):
    """Update a channel; config merges key by key, a masked secret sent back keeps the stored one"""
    box = pulse().box
    with tenant_session() as session:
        channel = get_or_404(session, NotificationChannel, channel_id)
        if body.config is not None:
            sender = SENDERS[channel.channel_type]
            stored = box.decrypt(channel.encrypted_secrets)
            current = merge_secrets(channel.config or {}, stored)
            patch = restore_masked(body.config, stored, sender.secret_fields)
            public, secrets = _validated(channel.channel_type, deep_merge(current, patch))
            channel.config = public
            channel.encrypted_secrets = box.encrypt(secrets)
        if body.name is not None:
            channel.name = body.name
        if body.is_enabled is not None:
            channel.is_enabled = body.is_enabled
        channel.updated_at = utcnow()
        session.flush()
        return channel_view(channel, box, _health(channel))


@bp.delete("/channels/<channel_id>")
@operation(None, 204)
def delete_channel(channel_id: str):
    """Delete a channel and its routing rules; its deliveries stay readable under /deliveries"""
    with tenant_session() as session:
        retire_channel(session, get_or_404(session, NotificationChannel, channel_id))
    return "", 204


@bp.post("/channels/<channel_id>/test")
@operation(ChannelTestResult, errors=(502,))
def test_channel(channel_id: str):
    """Send a test notification now (502 with the receiver's answer on failure)"""
    state = pulse()
    with tenant_session() as session:
        channel = get_or_404(session, NotificationChannel, channel_id)
        try:
            config = channel_config(state.box, channel)
        except DeliveryError as exc:
            raise Problem(502, f"test send failed: {exc}") from None
        message_id = f"test-{uuid.uuid4()}"
        payload = channel_test_payload(channel.tenant_id, channel.name, message_id, utcnow())
        notification = Notification(payload=payload, message_id=message_id)
        sender = SENDERS[channel.channel_type]
    started = time.perf_counter()
    try:
        result = run_blocking(sender.send, config, notification, SendContext(state.settings.delivery))
    except DeliveryError as exc:
        retry = " (temporary: a later attempt may succeed)" if isinstance(exc, TransientError) else ""
        raise Problem(502, f"test send failed: {exc}{retry}", title="Bad Gateway") from None
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    # The receiver answered: an open circuit need not wait for its probe.
    if state.admission.close(channel.channel_id):
        state.deliveries.reopen(channel.channel_id)
    return ChannelTestResult(status="ok", duration_ms=duration_ms, status_code=result.status_code, message_id=message_id)
