"""The tables of DESIGN §4, as SQLAlchemy 2 typed models. Alembic alone creates them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column

from app.db import UtcDateTime
from app.status import AlertStatus, Event, JobStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT identity on PostgreSQL; SQLite only auto-increments an INTEGER primary key.
Id = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")
# A JSON column whose None is SQL NULL (not JSON null), so `IS NULL` finds it.
NullableJson = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Tenant(Base):
    __tablename__ = "tenants"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Bumped by the database on every write to the tenant's rules, channels and silences
    # (migration 0005's triggers): what a process's cached routing is checked against.
    routing_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))


class User(Base):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Device(Base):
    __tablename__ = "devices"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    site_id: Mapped[str | None] = mapped_column(String(128))
    tags: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_tenant_status", "tenant_id", "status"),
        Index("ix_alerts_tenant_device_type", "tenant_id", "device_id", "alert_type"),
        # At most one active (OPEN or ACKNOWLEDGED) alert per fingerprint: concurrent
        # duplicates collide here instead of opening twice.
        Index(
            "uq_alerts_active_fingerprint",
            "tenant_id",
            "fingerprint",
            unique=True,
            postgresql_where=text("status IN ('OPEN', 'ACKNOWLEDGED')"),
            sqlite_where=text("status IN ('OPEN', 'ACKNOWLEDGED')"),
        ),
    )

    alert_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"))
    device_id: Mapped[str] = mapped_column(String(128))
    site_id: Mapped[str | None] = mapped_column(String(128))
    alert_type: Mapped[str] = mapped_column(String(128))
    severity: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    fingerprint: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=AlertStatus.OPEN)
    triggered_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The acting token's `sub`, or `link:<channel_id>` for an acknowledge link; null when unknown.
    acknowledged_by: Mapped[str | None] = mapped_column(String(254))
    closed_by: Mapped[str | None] = mapped_column(String(254))


class NotificationChannel(Base):
    __tablename__ = "notification_channels"

    channel_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    channel_type: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    # Fernet token of a JSON object {dotted.path: value} holding the write-only fields.
    encrypted_secrets: Mapped[bytes | None] = mapped_column(LargeBinary)
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    # Set by DELETE: the row stays so that its jobs and their delivery log stay readable.
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class RoutingRule(Base):
    __tablename__ = "notification_routing_rules"

    rule_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), index=True)
    channel_id: Mapped[int] = mapped_column(
        ForeignKey("notification_channels.channel_id", ondelete="CASCADE"), index=True
    )
    min_severity: Mapped[int | None] = mapped_column(Integer)
    alert_type: Mapped[str | None] = mapped_column(String(128))
    device_tag_key: Mapped[str | None] = mapped_column(String(128))
    device_tag_val: Mapped[str | None] = mapped_column(String(256))
    site_ids: Mapped[list[str] | None] = mapped_column(Json)
    device_prefixes: Mapped[list[str] | None] = mapped_column(Json)
    deliver_on: Mapped[list[str]] = mapped_column(Json, default=lambda: [Event.OPEN])
    throttle_minutes: Mapped[int] = mapped_column(Integer, default=0)
    priority: Mapped[int] = mapped_column(Integer, default=100)
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Escalation steps `[{after_seconds, channel_ids}]` (app.escalation), or null.
    escalation: Mapped[list[dict[str, Any]] | None] = mapped_column(NullableJson)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Silence(Base):
    """A silence or maintenance window (DESIGN §6a): what it matches, on which channels, when."""

    __tablename__ = "silences"

    silence_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)
    matchers: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    # Null: every channel.
    channel_ids: Mapped[list[int] | None] = mapped_column(Json)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # `{rrule, duration_seconds, timezone}` for a maintenance window, null for a one-off silence.
    recurrence: Mapped[dict[str, Any] | None] = mapped_column(Json)
    notify_on_end: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AlertEvent(Base):
    """One event of one alert (an open, acknowledge, close or escalation step) that has jobs.

    Its notification payload is stored here once, however many channels deliver it.
    """

    __tablename__ = "alert_events"
    __table_args__ = (UniqueConstraint("tenant_id", "alert_id", "event_type", "escalation_step"),)

    event_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"))
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.alert_id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(16))
    escalation_step: Mapped[int] = mapped_column(Integer, default=0)
    # The payload of DESIGN §7 without `job_id`, which each job adds when it is sent.
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


# The states a job waits in without a broker message, and why (`NotificationJob.hold`).
HOLD_CHANNEL_BUSY = "channel_busy"  # its channel had DELIVERY_CONCURRENCY_PER_CHANNEL attempts in flight
HOLD_CIRCUIT_OPEN = "circuit_open"  # its channel's circuit breaker was open


class NotificationJob(Base):
    __tablename__ = "notification_jobs"
    __table_args__ = (
        # One job per alert event (and escalation step) and channel, ever.
        UniqueConstraint("tenant_id", "alert_id", "channel_id", "event_type", "escalation_step", name="uq_notification_jobs_event_channel"),
        # The sweeper's and the dead-letter queue's scans.
        Index("ix_notification_jobs_status_next", "status", "next_attempt_at"),
        Index("ix_notification_jobs_tenant_created", "tenant_id", "job_id"),
        # The throttle's look-back: same channel, recent OPEN jobs.
        Index("ix_notification_jobs_throttle", "channel_id", "event_type", "created_at"),
        # Jobs waiting without a broker message, in the order they are fed to the broker.
        Index(
            "ix_notification_jobs_unqueued",
            "tenant_id",
            "queue",
            "job_id",
            postgresql_where=text("enqueued_at IS NULL AND status IN ('PENDING', 'RETRYING')"),
            sqlite_where=text("enqueued_at IS NULL AND status IN ('PENDING', 'RETRYING')"),
        ),
        # Jobs with a message in the broker: a tenant's share of a queue is counted here.
        Index(
            "ix_notification_jobs_queued",
            "tenant_id",
            "queue",
            postgresql_where=text("enqueued_at IS NOT NULL AND status IN ('PENDING', 'RETRYING')"),
            sqlite_where=text("enqueued_at IS NOT NULL AND status IN ('PENDING', 'RETRYING')"),
        ),
        # Jobs held for their channel (busy, or its circuit open).
        # Suppressed jobs that a silence's end may still release.
        Index(
            "ix_notification_jobs_silenced",
            "silence_id",
            postgresql_where=text("silence_id IS NOT NULL"),
            sqlite_where=text("silence_id IS NOT NULL"),
        ),
        Index(
            "ix_notification_jobs_held",
            "channel_id",
            "job_id",
            postgresql_where=text("hold IS NOT NULL"),
            sqlite_where=text("hold IS NOT NULL"),
        ),
    )

    job_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"))
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.alert_id", ondelete="CASCADE"), index=True)
    channel_id: Mapped[int] = mapped_column(
        ForeignKey("notification_channels.channel_id", ondelete="CASCADE")
    )
    rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("notification_routing_rules.rule_id", ondelete="SET NULL")
    )
    event_id: Mapped[int] = mapped_column(ForeignKey("alert_events.event_id", ondelete="CASCADE"), index=True)
    event_type: Mapped[str] = mapped_column(String(16))
    escalation_step: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING)
    # Which queue the job's messages go to (from the alert's severity at dispatch).
    queue: Mapped[str] = mapped_column(String(32), default="pulse.default")
    # Every attempt ever made, replays included; the number of the current attempt is the
    # fencing token of its claim.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # `attempts` when the job was last replayed: the dead-letter budget counts from here.
    attempts_at_replay: Mapped[int] = mapped_column(Integer, default=0)
    # PENDING/RETRYING: when the next attempt is due. SENDING: when the claim's lease ends.
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # When the job's latest broker message was sent; null while it waits without one.
    enqueued_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Why a waiting job is held back for its channel (HOLD_*), or null.
    hold: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    # SUPPRESSED: the silence whose end may release the job (null once it never will).
    silence_id: Mapped[int | None] = mapped_column(ForeignKey("silences.silence_id", ondelete="SET NULL"))
    # When a silence's end released the job; the alert's escalation counts from then.
    released_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    replayed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    # The event's payload, read from its one stored copy.
    payload: Mapped[dict[str, Any]] = column_property(
        select(AlertEvent.payload).where(AlertEvent.event_id == event_id).correlate_except(AlertEvent).scalar_subquery()
    )


class DeliveryLog(Base):
    __tablename__ = "delivery_log"
    # One row per attempt: a late outcome of an attempt updates its row, never adds one.
    __table_args__ = (UniqueConstraint("job_id", "attempt"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), index=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("notification_jobs.job_id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    success: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class TelemetryPoint(Base):
    """One telemetry sample of a device, for `TELEMETRY_BACKEND=sql`."""

    __tablename__ = "telemetry"
    __table_args__ = (Index("ix_telemetry_device_time", "tenant_id", "device_id", "ts"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"))
    device_id: Mapped[str] = mapped_column(String(128))
    ts: Mapped[datetime] = mapped_column(UtcDateTime)
    metrics: Mapped[dict[str, Any]] = mapped_column(Json)


TENANT_TABLES = (
    "users",
    "devices",
    "alerts",
    "notification_channels",
    "notification_routing_rules",
    "silences",
    "alert_events",
    "notification_jobs",
    "delivery_log",
    "telemetry",
)
