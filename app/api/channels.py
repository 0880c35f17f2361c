"""Notification channels: CRUD with write-only secrets, and POST /channels/{id}/test."""

from __future__ import annotations

import time
import uuid
from typing import Any

from flask import Blueprint
from pydantic import ValidationError
from sqlalchemy import select

from app.api.common import paginate, parse_body, path_id, tenant_id, tenant_session
from app.api.views import channel_view
from app.blocking import run_blocking
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
from app.web import pulse

bp = Blueprint("channels", __name__)


def get_channel(session, raw_id: str) -> NotificationChannel:
    channel = session.scalars(
        select(NotificationChannel).where(
            NotificationChannel.tenant_id == tenant_id(), NotificationChannel.channel_id == path_id(raw_id, "channel")
        )
    ).first()
    if channel is None:
        raise Problem(404, "channel not found")
    return channel


def _validated(channel_type: str, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public config, secrets) of a full config, or a 422 naming the bad field."""
    sender = SENDERS[channel_type]
    try:
        model = sender.validate_config(config, pulse().settings.delivery)
    except ValidationError as exc:
        raise validation_problem(exc, prefix=("config",)) from None
    return split_secrets(model.model_dump(mode="json", by_alias=True), sender.secret_fields)


@bp.post("/channels")
def create_channel():
    body = parse_body(ChannelCreate)
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
        return channel_view(channel, state.box), 201


@bp.get("/channels")
def list_channels():
    box = pulse().box
    with tenant_session() as session:
        stmt = select(NotificationChannel).where(NotificationChannel.tenant_id == tenant_id())
        return paginate(session, stmt, NotificationChannel.channel_id, lambda c: channel_view(c, box))


@bp.get("/channels/<channel_id>")
def read_channel(channel_id: str):
    with tenant_session() as session:
        return channel_view(get_channel(session, channel_id), pulse().box)


@bp.patch("/channels/<channel_id>")
def update_channel(channel_id: str):
    body = parse_body(ChannelUpdate)
    box = pulse().box
    with tenant_session() as session:
        channel = get_channel(session, channel_id)
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
        return channel_view(channel, box)


@bp.delete("/channels/<channel_id>")
def delete_channel(channel_id: str):
    with tenant_session() as session:
        session.delete(get_channel(session, channel_id))
    return "", 204


@bp.post("/channels/<channel_id>/test")
def test_channel(channel_id: str):
    """Send a test notification now and answer with what the receiver said."""
    state = pulse()
    with tenant_session() as session:
        channel = get_channel(session, channel_id)
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
    return {"status": "ok", "duration_ms": duration_ms, "status_code": result.status_code, "message_id": message_id}
