"""Alerts: open (POST /alerts), list, read, acknowledge, close.

Each state change commits the alert and its notification jobs together; the jobs' Celery
messages and the live event are sent after the commit.
"""

from __future__ import annotations

from flask import Blueprint
from sqlalchemy import select

from app import alerts as lifecycle
from app import opening
from app.api.common import get_or_404, path_id, principal, tenant_id, tenant_session
from app.api.operations import operation
from app.api.pagination import paginate
from app.api.queries import AlertFilters
from app.models import Alert
from app.problems import Problem, not_found
from app.schemas import AlertCreate
from app.views import AlertView, AlertWithJobs, Page
from app.web import pulse

bp = Blueprint("alerts", __name__)


def _answer(outcome: lifecycle.AlertOutcome, to_send: list[tuple[int, str]], status: int) -> tuple[AlertWithJobs, int]:
    """Send the jobs' messages and the live event, then answer with the alert and `jobs_queued`."""
    state = pulse()
    view = AlertView.of(outcome.alert)
    state.dispatcher.send(to_send)
    if outcome.event:
        state.events.alert_changed(outcome.alert.tenant_id, outcome.event, view.model_dump(mode="json"))
    return AlertWithJobs.of(view, jobs_queued=len(outcome.jobs_to_send)), status


def _to_send(session, outcome: lifecycle.AlertOutcome) -> list[tuple[int, str]]:
    """The messages this event sends: its tenant's share of the queue (app.delivery.jobs)."""
    return lifecycle.jobs_to_send(session, outcome, pulse().settings.delivery)


@bp.post("/alerts")
@operation(AlertWithJobs, 201, body=AlertCreate, also={200: AlertWithJobs}, errors=(429,))
def open_alert(body: AlertCreate):
    """Open an alert (200 with the active alert when the fingerprint is a duplicate)"""
    state = pulse()
    with state.db.work(tenant_id()) as work:
        outcome, to_send = opening.open_alert(work, tenant_id(), body.model_dump(), state.settings.delivery)
    return _answer(outcome, to_send, 201 if outcome.created else 200)


@bp.get("/alerts")
@operation(Page[AlertView], query=AlertFilters)
def list_alerts(query: AlertFilters):
    """List alerts, newest first (status, device_id, min_severity)"""
    with tenant_session() as session:
        stmt = select(Alert).where(Alert.tenant_id == tenant_id())
        if query.status:
            stmt = stmt.where(Alert.status == query.status)
        if query.device_id:
            stmt = stmt.where(Alert.device_id == query.device_id)
        if query.min_severity is not None:
            stmt = stmt.where(Alert.severity >= query.min_severity)
        return paginate(session, stmt, (Alert.alert_id,), AlertView.of, query)


@bp.get("/alerts/<alert_id>")
@operation(AlertView)
def read_alert(alert_id: str):
    """Read an alert"""
    with tenant_session() as session:
        return AlertView.of(get_or_404(session, Alert, alert_id))


@bp.post("/alerts/<alert_id>/acknowledge")
@operation(AlertWithJobs, errors=(409, 429))
def acknowledge(alert_id: str):
    """Acknowledge an alert (409 if it is closed)"""
    try:
        with tenant_session() as session:
            outcome = lifecycle.acknowledge_alert(session, tenant_id(), path_id(alert_id, "alert"), by=principal().subject)
            if outcome is None:
                raise not_found("alert")
            to_send = _to_send(session, outcome)
    except lifecycle.Conflict as exc:
        raise Problem(409, str(exc)) from None
    return _answer(outcome, to_send, 200)


@bp.post("/alerts/<alert_id>/close")
@operation(AlertWithJobs, errors=(429,))
def close(alert_id: str):
    """Close an alert"""
    with tenant_session() as session:
        outcome = lifecycle.close_alert(session, tenant_id(), path_id(alert_id, "alert"), by=principal().subject)
        if outcome is None:
            raise not_found("alert")
        to_send = _to_send(session, outcome)
    return _answer(outcome, to_send, 200)
