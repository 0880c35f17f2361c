"""Deliveries (notification jobs): list, read with attempts, replay one, replay by filter.

`GET /deliveries?status=FAILED` is the dead-letter queue; a replay puts a FAILED job back
through the same path as a new one, with a fresh allowance of attempts.
"""

from __future__ import annotations

from flask import Blueprint, request
from sqlalchemy import select

from app.api.common import (
    paginate,
    parse_body,
    path_id,
    query_int,
    tenant_id,
    tenant_session,
)
from app.delivery import replay
from app.dispatch import send_jobs
from app.models import DeliveryLog, NotificationJob
from app.problems import Problem
from app.schemas import BulkReplay
from app.status import JobStatus
from app.views import job_view, log_view
from app.web import pulse

bp = Blueprint("deliveries", __name__)

STATUSES = tuple(JobStatus)


def get_job(session, raw_id: str) -> NotificationJob:
    job = session.scalars(
        select(NotificationJob).where(NotificationJob.tenant_id == tenant_id(), NotificationJob.job_id == path_id(raw_id, "delivery"))
    ).first()
    if job is None:
        raise Problem(404, "delivery not found")
    return job


@bp.get("/deliveries")
def list_deliveries():
    status = request.args.get("status")
    if status is not None and status.upper() not in STATUSES:
        raise Problem(422, f"status must be one of {', '.join(STATUSES)}", errors=[{"field": "status", "message": "unknown status"}])
    alert_id = query_int("alert_id", None, 0)
    channel_id = query_int("channel_id", None, 0)
    with tenant_session() as session:
        stmt = select(NotificationJob).where(NotificationJob.tenant_id == tenant_id())
        if status:
            stmt = stmt.where(NotificationJob.status == status.upper())
        if alert_id is not None:
            stmt = stmt.where(NotificationJob.alert_id == alert_id)
        if channel_id is not None:
            stmt = stmt.where(NotificationJob.channel_id == channel_id)
        return paginate(session, stmt, NotificationJob.job_id, job_view)


@bp.get("/deliveries/<job_id>")
def read_delivery(job_id: str):
    with tenant_session() as session:
        job = get_job(session, job_id)
        log = session.scalars(select(DeliveryLog).where(DeliveryLog.job_id == job.job_id).order_by(DeliveryLog.attempt, DeliveryLog.id)).all()
        return {**job_view(job), "log": [log_view(row) for row in log]}


@bp.post("/deliveries/<job_id>/replay")
def replay_one(job_id: str):
    with tenant_session() as session:
        job = get_job(session, job_id)
        if not replay(session, job):
            raise Problem(409, f"only a FAILED delivery can be replayed; this one is {job.status}")
        session.flush()
        view = job_view(job)
        target = (job.job_id, job.queue)
    send_jobs(pulse().enqueuer, [target])
    return view, 202


@bp.post("/deliveries/replay")
def replay_many():
    body = parse_body(BulkReplay)
    with tenant_session() as session:
        stmt = select(NotificationJob).where(NotificationJob.tenant_id == tenant_id(), NotificationJob.status == JobStatus.FAILED)
        if body.channel_id is not None:
            stmt = stmt.where(NotificationJob.channel_id == body.channel_id)
        if body.since is not None:
            stmt = stmt.where(NotificationJob.created_at >= body.since)
        jobs = session.scalars(stmt.order_by(NotificationJob.job_id).with_for_update()).all()
        if body.dry_run:
            return {"would_replay": len(jobs)}, 200
        for job in jobs:
            replay(session, job)
        targets = [(job.job_id, job.queue) for job in jobs]
    send_jobs(pulse().enqueuer, targets)
    return {"replayed": len(targets)}, 202
