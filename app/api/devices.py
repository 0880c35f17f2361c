"""Devices: POST/GET /devices, GET/PATCH/DELETE /devices/{device_id}."""

from __future__ import annotations

from flask import Blueprint
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.api.common import get_or_404, tenant_id, tenant_session
from app.api.operations import operation
from app.api.pagination import paginate
from app.api.queries import DeviceFilters
from app.models import Device, utcnow
from app.problems import Problem
from app.schemas import DeviceCreate, DeviceUpdate
from app.views import DeviceView, Page

bp = Blueprint("devices", __name__)


@bp.post("/devices")
@operation(DeviceView, 201, body=DeviceCreate, errors=(409,))
def create_device(body: DeviceCreate):
    """Register a device (409 if its device_id exists)"""
    try:
        with tenant_session() as session:
            if session.get(Device, (tenant_id(), body.device_id)) is not None:
                raise Problem(409, f"device {body.device_id!r} already exists")
            device = Device(tenant_id=tenant_id(), device_id=body.device_id, site_id=body.site_id, tags=body.tags, created_at=utcnow())
            session.add(device)
            session.flush()
            view = DeviceView.of(device)
    except IntegrityError:
        raise Problem(409, f"device {body.device_id!r} already exists") from None
    return view


@bp.get("/devices")
@operation(Page[DeviceView], query=DeviceFilters)
def list_devices(query: DeviceFilters):
    """List devices, newest first (site_id)"""
    with tenant_session() as session:
        stmt = select(Device).where(Device.tenant_id == tenant_id())
        if query.site_id:
            stmt = stmt.where(Device.site_id == query.site_id)
        return paginate(session, stmt, (Device.created_at, Device.device_id), DeviceView.of, query)


@bp.get("/devices/<device_id>")
@operation(DeviceView)
def read_device(device_id: str):
    """Read a device"""
    with tenant_session() as session:
        return DeviceView.of(get_or_404(session, Device, device_id))


@bp.patch("/devices/<device_id>")
@operation(DeviceView, body=DeviceUpdate)
def update_device(device_id: str, body: DeviceUpdate):
    """Update a device's site and tags"""
    with tenant_session() as session:
        device = get_or_404(session, Device, device_id)
        if "site_id" in body.model_fields_set:
            device.site_id = body.site_id
        if "tags" in body.model_fields_set:
            device.tags = body.tags or {}
        session.flush()
        return DeviceView.of(device)


@bp.delete("/devices/<device_id>")
@operation(None, 204)
def delete_device(device_id: str):
    """Delete a device"""
    with tenant_session() as session:
        session.delete(get_or_404(session, Device, device_id))
    return "", 204
