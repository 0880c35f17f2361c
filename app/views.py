"""JSON views of the resources, keyed as in the data model and never wrapped: what the API answers
and the live feed pushes."""

from __future__ import annotations

from typing import Any

from app.channels import get_sender
from app.models import (
    Alert,
    DeliveryLog,
    Device,
    NotificationChannel,
    NotificationJob,
    RoutingRule,
)
from app.payload import iso
from app.secrets import SecretBox, masked
from app.severity import severity_label
from app.status import UNSETTLED_JOB_STATUSES


def device_view(device: Device) -> dict[str, Any]:
    return {
        "device_id": device.device_id,
        "tenant_id": device.tenant_id,
        "site_id": device.site_id,
        "tags": device.tags or {},
        "created_at": iso(device.created_at),
    }


def alert_view(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "tenant_id": alert.tenant_id,
        "device_id": alert.device_id,
        "site_id": alert.site_id,
        "alert_type": alert.alert_type,
        "severity": alert.severity,
        "severity_label": severity_label(alert.severity),
        "message": alert.message,
        "details": alert.details,
        "fingerprint": alert.fingerprint,
        "status": alert.status,
        "triggered_at": iso(alert.triggered_at),
        "acknowledged_at": iso(alert.acknowledged_at),
        "closed_at": iso(alert.closed_at),
    }


def channel_view(channel: NotificationChannel, box: SecretBox) -> dict[str, Any]:
    sender = get_sender(channel.channel_type)
    return {
        "channel_id": channel.channel_id,
        "tenant_id": channel.tenant_id,
        "name": channel.name,
        "channel_type": sender.channel_type,
        "config": masked(channel.config or {}, box.decrypt(channel.encrypted_secrets), sender.secret_fields),
        "is_enabled": channel.is_enabled,
        "created_at": iso(channel.created_at),
        "updated_at": iso(channel.updated_at),
    }


RULE_FIELDS = (
    "channel_id",
    "min_severity",
    "alert_type",
    "device_tag_key",
    "device_tag_val",
    "site_ids",
    "device_prefixes",
    "deliver_on",
    "throttle_minutes",
    "priority",
    "is_enabled",
)


def rule_view(rule: RoutingRule) -> dict[str, Any]:
    view = {"rule_id": rule.rule_id, "tenant_id": rule.tenant_id}
    view.update({name: getattr(rule, name) for name in RULE_FIELDS})
    view["created_at"] = iso(rule.created_at)
    return view


def log_view(row: DeliveryLog) -> dict[str, Any]:
    return {
        "id": row.id,
        "job_id": row.job_id,
        "attempt": row.attempt,
        "success": row.success,
        "status_code": row.status_code,
        "error": row.error,
        "duration_ms": row.duration_ms,
        "created_at": iso(row.created_at),
    }


def job_view(job: NotificationJob) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "tenant_id": job.tenant_id,
        "alert_id": job.alert_id,
        "channel_id": job.channel_id,
        "rule_id": job.rule_id,
        "event_type": job.event_type,
        "status": job.status,
        "attempts": job.attempts,
        "next_attempt_at": iso(job.next_attempt_at) if job.status in UNSETTLED_JOB_STATUSES else None,
        "last_error": job.last_error,
        "payload": {**job.payload, "job_id": job.job_id},
        "created_at": iso(job.created_at),
        "delivered_at": iso(job.delivered_at),
    }
