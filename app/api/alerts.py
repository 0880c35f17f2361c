"""Alerts: open (POST /alerts), list, read, acknowledge, close.

Each state change commits the alert and its notification jobs together; the jobs' Celery
messages and the live event are sent after the commit.
"""

from __future__ import annotations

from flask import Blueprint, request
from sqlalchemy import select

from app import alerts as lifecycle
from app.api.common import (
    paginate,
    parse_body,
    path_id,
    query_int,
    tenant_id,
    tenant_session,
)
from app.dispatch import send_jobs
from app.models import Alert
from app.problems import Problem, not_found
from app.schemas import AlertCreate
from app.status import AlertStatus
from app.views import alert_view
from app.web import pulse

bp = Blueprint("alerts", __name__)

STATUSES = tuple(AlertStatus)


def _answer(outcome: lifecycle.AlertOutcome, status: int):
    """Send the new jobs and the live event, then answer with the alert and `jobs_queued`."""
    state = pulse()
    view = alert_view(outcome.alert)
    to_send = [(job.job_id, job.queue) for job in outcome.jobs_to_send]
    send_jobs(state.enqueuer, to_send)
    if outcome.event:
        state.events.alert_changed(outcome.alert.tenant_id, outcome.event, view)
    return {**view, "jobs_queued": len(to_send)}, status


@bp.post("/alerts")
def open_alert():
    body = parse_body(AlertCreate)
    with tenant_session() as session:
        outcome = lifecycle.open_alert(session, tenant_id(), body.model_dump())
    return _answer(outcome, 201 if outcome.created else 200)


@bp.get("/alerts")
def list_alerts():
    status = request.args.get("status")
    if status is not None and status.upper() not in STATUSES:
        raise Problem(422, f"status must be one of {', '.join(STATUSES)}", errors=[{"field": "status", "message": "unknown status"}])
    min_severity = query_int("min_severity", None, 0, 5)
    with tenant_session() as session:
        stmt = select(Alert).where(Alert.tenant_id == tenant_id())
        if status:
            stmt = stmt.where(Alert.status == status.upper())
        if request.args.get("device_id"):
            stmt = stmt.where(Alert.device_id == request.args["device_id"])
        if min_severity is not None:
            stmt = stmt.where(Alert.severity >= min_severity)
        return paginate(session, stmt, Alert.alert_id, alert_view)


def _alert_id(raw: str) -> int:
    return path_id(raw, "alert")


@bp.get("/alerts/<alert_id>")
def read_alert(alert_id: str):
    with tenant_session() as session:
        alert = session.scalars(select(Alert).where(Alert.tenant_id == tenant_id(), Alert.alert_id == _alert_id(alert_id))).first()
        if alert is None:
            raise not_found("alert")
        return alert_view(alert)


@bp.post("/alerts/<alert_id>/acknowledge")
def acknowledge(alert_id: str):
    try:
        with tenant_session() as session:
            outcome = lifecycle.acknowledge_alert(session, tenant_id(), _alert_id(alert_id))
            if outcome is None:
                raise not_found("alert")
    except lifecycle.Conflict as exc:
        raise Problem(409, str(exc)) from None
    return _answer(outcome, 200)


@bp.post("/alerts/<alert_id>/close")
def close(alert_id: str):
    with tenant_session() as session:
        outcome = lifecycle.close_alert(session, tenant_id(), _alert_id(alert_id))
        if outcome is None:
            raise not_found("alert")
    return _answer(outcome, 200)
