"""Devices: POST/GET /devices, GET/PATCH/DELETE /devices/{device_id}."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, request
from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError

from app.api.common import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    decode_cursor,
    encode_cursor,
    invalid_cursor,
    parse_body,
    query_int,
    tenant_id,
    tenant_session,
)
from app.models import Device, utcnow
from app.problems import Problem, not_found
from app.schemas import DeviceCreate, DeviceUpdate
from app.views import device_view

bp = Blueprint("devices", __name__)


def get_device(session, device_id: str) -> Device:
    device = session.get(Device, (tenant_id(), device_id))
    if device is None:
        raise not_found("device")
    return device


@bp.post("/devices")
def create_device():
    body = parse_body(DeviceCreate)
    try:
        with tenant_session() as session:
            if session.get(Device, (tenant_id(), body.device_id)) is not None:
                raise Problem(409, f"device {body.device_id!r} already exists")
            device = Device(tenant_id=tenant_id(), device_id=body.device_id, site_id=body.site_id, tags=body.tags, created_at=utcnow())
            session.add(device)
            session.flush()
            view = device_view(device)
    except IntegrityError:
        raise Problem(409, f"device {body.device_id!r} already exists") from None
    return view, 201


@bp.get("/devices")
def list_devices():
    limit = query_int("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    cursor = decode_cursor(request.args.get("cursor"))
    with tenant_session() as session:
        stmt = select(Device).where(Device.tenant_id == tenant_id())
        if request.args.get("site_id"):
            stmt = stmt.where(Device.site_id == request.args["site_id"])
        if cursor is not None:
            if len(cursor) != 2 or not all(isinstance(part, str) for part in cursor):
                raise invalid_cursor()
            try:
                created = datetime.fromisoformat(cursor[0])
            except ValueError:
                raise invalid_cursor() from None
            stmt = stmt.where(tuple_(Device.created_at, Device.device_id) < tuple_(created, cursor[1]))
        rows = session.scalars(stmt.order_by(Device.created_at.desc(), Device.device_id.desc()).limit(limit + 1)).all()
        items = rows[:limit]
        next_cursor = encode_cursor([items[-1].created_at.isoformat(), items[-1].device_id]) if len(rows) > limit else None
        return {"items": [device_view(d) for d in items], "next_cursor": next_cursor}


@bp.get("/devices/<device_id>")
def read_device(device_id: str):
    with tenant_session() as session:
        return device_view(get_device(session, device_id))


@bp.patch("/devices/<device_id>")
def update_device(device_id: str):
    body = parse_body(DeviceUpdate)
    with tenant_session() as session:
        device = get_device(session, device_id)
        if "site_id" in body.model_fields_set:
            device.site_id = body.site_id
        if "tags" in body.model_fields_set:
            device.tags = body.tags or {}
        session.flush()
        return device_view(device)


@bp.delete("/devices/<device_id>")
def delete_device(device_id: str):
    with tenant_session() as session:
        session.delete(get_device(session, device_id))
    return "", 204
