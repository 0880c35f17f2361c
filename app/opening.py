"""Opening an alert (POST /alerts): the hot path of ingest, in as few statements as it takes.

Every alert Pulse ingests passes here, so the statements are built once, at import, from the
tables (SQLAlchemy Core with bound parameters) and run on the driver in a `Work` on
PostgreSQL (see `Database.work`): the ORM's per-statement bookkeeping cost more CPU than
the database spent running them. On PostgreSQL a new alert takes at most three round trips
before the commit (BEGIN travels with the first):

1. the device (registered if new), the alert, and the tenant's routing version, in one
   statement: one insert decides between concurrent duplicates (the partial unique index
   on active fingerprints turns all but one into no-ops);
2. the event with its one payload and the jobs of the matched channels, in one statement;
3. the tenant's share of the queue fed (`app.delivery.jobs.feed_tenant`), unless the second
   statement found it full.

All three are planned once per connection (`app.db.prepared`): their plans do not depend
on the values, and PostgreSQL spent more CPU planning them than running them.

SQLite (the embedded default) has no data-modifying CTEs: there the same statements run
one by one, in a plain session. The rules are decided in between, in Python, from the
tenant's cached routing (`app.tenant_routing`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text, bindparam, column, exists, func, literal, select, true, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.alerts import ACTIVE_FINGERPRINT, AlertOutcome, NewJob, derive_fingerprint, insert_jobs, job_rows, route_event
from app.config import DeliverySettings
from app.db import DbNow, Work, is_postgres, prepared, run
from app.delivery.jobs import feed_tenant, queued_messages
from app.models import Alert, AlertEvent, Device, NotificationJob, Tenant, utcnow
from app.payload import notification_payload
from app.routing import JOB_OUTCOMES, AlertFacts, effective_tags
from app.severity import queue_for
from app.status import ACTIVE_ALERT_STATUSES, AlertStatus, Event

DEVICES = Device.__table__
ALERTS = Alert.__table__
EVENTS = AlertEvent.__table__
JOBS = NotificationJob.__table__
TENANTS = Tenant.__table__


def _param(name: str, like) -> Any:
    """A bound parameter typed as the column `like` (so JSON and times are bound as they are stored)."""
    return bindparam(f"p_{name}", type_=like.type)


_ROUTING_VERSION = select(TENANTS.c.routing_version).where(TENANTS.c.tenant_id == bindparam("p_tenant_id")).scalar_subquery()
_KNOWN_DEVICE = select(DEVICES.c.site_id, DEVICES.c.tags).where(
    DEVICES.c.tenant_id == bindparam("p_tenant_id"), DEVICES.c.device_id == bindparam("p_device_id")
)
_NEW_DEVICE_COLUMNS = ("tenant_id", "device_id", "tags", "created_at")


def _new_device(insert, where=None):
    """Register the device (no site, no tags); a concurrent registration wins quietly."""
    values = select(*(_param(name, DEVICES.c[name]) for name in _NEW_DEVICE_COLUMNS))
    if where is not None:
        values = values.where(where)
    return (
        insert(DEVICES)
        .from_select(_NEW_DEVICE_COLUMNS, values)
        .on_conflict_do_nothing(index_elements=["tenant_id", "device_id"])
        .returning(DEVICES.c.site_id, DEVICES.c.tags)
    )


_ALERT_COLUMNS = ("tenant_id", "device_id", "alert_type", "severity", "message", "details", "fingerprint", "triggered_at")


def _new_alert(insert, site_id, device=None):
    """Insert the alert as OPEN, unless an active alert has its fingerprint (then nothing)."""
    values = select(
        *(_param(name, ALERTS.c[name]) for name in _ALERT_COLUMNS), site_id, _param("status", ALERTS.c.status)
    )
    if device is not None:
        values = values.select_from(device)
    return (
        insert(ALERTS)
        .from_select((*_ALERT_COLUMNS, "site_id", "status"), values)
        .on_conflict_do_nothing(index_elements=["tenant_id", "fingerprint"], index_where=ACTIVE_FINGERPRINT)
        .returning(*ALERTS.c)
    )


# PostgreSQL: the device (known, or registered now), the alert and the routing version in one.
_known = _KNOWN_DEVICE.cte("known")
_added = _new_device(postgresql.insert, ~exists(select(_known.c.site_id))).cte("added")
_device = union_all(select(_known.c.site_id, _known.c.tags), select(_added.c.site_id, _added.c.tags)).cte("device")
_opened = _new_alert(postgresql.insert, func.coalesce(_param("site_id", ALERTS.c.site_id), _device.c.site_id), _device).cte("opened")
_OPEN_PG = prepared(
    select(*_opened.c, _device.c.tags.label("device_tags"), _ROUTING_VERSION.label("routing_version"))
    .select_from(_device)
    .outerjoin(_opened, true())
)

# SQLite: the same, one statement at a time.
_ADD_DEVICE_SQLITE = _new_device(sqlite.insert)
_OPEN_SQLITE = _new_alert(sqlite.insert, _param("site_id", ALERTS.c.site_id))
_VERSION_SQLITE = select(_ROUTING_VERSION)

_ACTIVE = select(*ALERTS.c).where(
    ALERTS.c.tenant_id == bindparam("p_tenant_id"),
    ALERTS.c.fingerprint == bindparam("p_fingerprint"),
    ALERTS.c.status.in_([str(status) for status in ACTIVE_ALERT_STATUSES]),
)

_EVENT_COLUMNS = ("tenant_id", "alert_id", "event_type", "escalation_step", "payload", "created_at")


def _new_event(insert):
    return insert(EVENTS).values({name: _param(name, EVENTS.c[name]) for name in _EVENT_COLUMNS}).returning(EVENTS.c.event_id)


# PostgreSQL: the event and its jobs in one statement, the jobs' own columns as a JSON array.
_event = _new_event(postgresql.insert).cte("event")
_JOB_OWN = {"channel_id": Integer, "rule_id": Integer, "status": String, "last_error": Text, "silence_id": Integer}
_job = (
    func.jsonb_to_recordset(bindparam("p_jobs", type_=postgresql.JSONB))
    .table_valued(*(column(name, type_) for name, type_ in _JOB_OWN.items()))
    .render_derived(name="job", with_types=True)
)
_JOB_SHARED = ("tenant_id", "alert_id", "event_type", "escalation_step", "queue", "created_at", "updated_at")
_EVENT_AND_JOBS_PG = prepared(
    postgresql.insert(JOBS)
    .from_select(
        (*_JOB_OWN, *_JOB_SHARED, "event_id", "attempts", "attempts_at_replay", "next_attempt_at"),
        select(
            *(_job.c[name] for name in _JOB_OWN),
            *(_param(name, JOBS.c[name]) for name in _JOB_SHARED),
            _event.c.event_id,
            literal(0),
            literal(0),
            DbNow(),
        ).select_from(_event.join(_job, true())),
    )
    # With the tenant's messages already waiting in the queue: a full share is not fed.
    .returning(JOBS.c.job_id, JOBS.c.status, queued_messages(bindparam("p_tenant_id"), bindparam("p_queue")).label("queued"))
)
_EVENT_SQLITE = _new_event(sqlite.insert)


def open_alert(work: Work | Session, tenant_id: str, data: dict[str, Any], settings: DeliverySettings, now: datetime | None = None) -> tuple[AlertOutcome, list[tuple[int, str]]]:
    """Open an alert, or find the active one with the same fingerprint (no new jobs).

    Returns the outcome and the jobs whose messages go out after the commit (the tenant's
    share of its queue).
    """
    now = now or utcnow()
    fingerprint = data.get("fingerprint") or derive_fingerprint(data["device_id"], data["alert_type"])
    params = {
        "tenant_id": tenant_id,
        "device_id": data["device_id"],
        "site_id": data.get("site_id"),
        "alert_type": data["alert_type"],
        "severity": data["severity"],
        "message": data["message"],
        "details": data.get("details") or {},
        "fingerprint": fingerprint,
        "status": str(AlertStatus.OPEN),
        "triggered_at": now,
        "tags": {},
        "created_at": now,
    }
    if is_postgres(work):
        row = run(work, _OPEN_PG, **params).first()
        if row is None:  # the device was registered by a concurrent first alert: it is visible now
            return open_alert(work, tenant_id, data, settings, now)
        alert, device_tags, version = (row if row.alert_id is not None else None), row.device_tags, row.routing_version
    else:
        device = run(work, _KNOWN_DEVICE, **params).first() or run(work, _ADD_DEVICE_SQLITE, **params).first()
        device = device or run(work, _KNOWN_DEVICE, **params).first()
        params["site_id"] = params["site_id"] or device.site_id
        alert, device_tags, version = run(work, _OPEN_SQLITE, **params).first(), device.tags, run(work, _VERSION_SQLITE, **params).scalar()
    if alert is None:
        existing = run(work, _ACTIVE, tenant_id=tenant_id, fingerprint=fingerprint).first()
        if existing is None:  # closed between the two statements: rare enough to ask again
            return open_alert(work, tenant_id, data, settings, now)
        return AlertOutcome(existing, event=None), []

    facts = AlertFacts(
        severity=alert.severity,
        alert_type=alert.alert_type,
        device_id=alert.device_id,
        site_id=alert.site_id,
        tags=effective_tags(device_tags, alert.details),
    )
    decisions = [d for d in route_event(work, tenant_id, facts, Event.OPEN, now, alert, version=version) if d.outcome in JOB_OUTCOMES]
    if not decisions:
        return AlertOutcome(alert, event=Event.OPEN, created=True), []
    queue = queue_for(alert.severity)
    event = {
        "tenant_id": tenant_id,
        "alert_id": alert.alert_id,
        "event_type": str(Event.OPEN),
        "escalation_step": 0,
        # The stored payload leaves job_id out: each job adds its own when it is sent.
        "payload": notification_payload(alert, Event.OPEN, None),
        "created_at": now,
    }
    own = job_rows(decisions, Event.OPEN)
    if is_postgres(work):
        inserted = run(work, _EVENT_AND_JOBS_PG, jobs=own, queue=queue, updated_at=now, **event).all()
    else:
        event_id = run(work, _EVENT_SQLITE, **event).scalar()
        inserted = insert_jobs(work, own, tenant_id=tenant_id, alert_id=alert.alert_id, event_id=event_id, event_type=str(Event.OPEN), queue=queue, now=now)
    jobs = sorted(NewJob(row.job_id, queue, row.status) for row in inserted)
    outcome = AlertOutcome(alert, event=Event.OPEN, created=True, jobs=jobs)
    # A new alert has no earlier event whose jobs could be settling: its tenant's share of the
    # queue is topped up, new jobs after the tenant's older waiting ones. A share already full
    # (a backlog, counted by the insert on PostgreSQL) is fed by the claims that consume it.
    full = bool(inserted) and getattr(inserted[0], "queued", 0) >= settings.tenant_queue_depth
    to_send = feed_tenant(work, tenant_id, queue, settings) if outcome.jobs_to_send and not full else []
    return outcome, to_send
