"""Deliveries (notification jobs): list, read with attempts, replay one, replay by filter.

`GET /deliveries?status=FAILED` is the dead-letter queue; a replay puts a FAILED job back
through the same path as a new one, with a fresh allowance of attempts.
"""

from __future__ import annotations

from flask import Blueprint
from sqlalchemy import select

from app.api.common import get_or_404, tenant_id, tenant_session
from app.api.operations import operation
from app.api.pagination import paginate
from app.api.queries import DeliveryFilters
from app.channel_records import deleted_channels
from app.delivery.jobs import feed_tenant, not_superseded, replay
from app.models import DeliveryLog, NotificationJob
from app.problems import Problem
from app.schemas import BulkReplay
from app.status import JobStatus
from app.views import DeliveryView, JobView, Page, Replayed, WouldReplay
from app.web import pulse

bp = Blueprint("deliveries", __name__)


@bp.get("/deliveries")
@operation(Page[JobView], query=DeliveryFilters)
def list_deliveries(query: DeliveryFilters):
    """List deliveries, newest first (status, alert_id, channel_id); status=FAILED is the dead-letter queue"""
    with tenant_session() as session:
        stmt = select(NotificationJob).where(NotificationJob.tenant_id == tenant_id())
        if query.status:
            stmt = stmt.where(NotificationJob.status == query.status)
        if query.alert_id is not None:
            stmt = stmt.where(NotificationJob.alert_id == query.alert_id)
        if query.channel_id is not None:
            stmt = stmt.where(NotificationJob.channel_id == query.channel_id)
        return paginate(session, stmt, (NotificationJob.job_id,), JobView.of, query)


@bp.get("/deliveries/<job_id>")
@operation(DeliveryView)
def read_delivery(job_id: str):
    """Read a delivery with its attempts (`log`)"""
    with tenant_session() as session:
        job = get_or_404(session, NotificationJob, job_id)
        log = session.scalars(select(DeliveryLog).where(DeliveryLog.job_id == job.job_id).order_by(DeliveryLog.attempt, DeliveryLog.id)).all()
        return DeliveryView.of(job, log=log)


@bp.post("/deliveries/<job_id>/replay")
@operation(JobView, 202, errors=(409,))
def replay_one(job_id: str):
    """Replay a FAILED delivery (409 for a delivery in any other state)"""
    with tenant_session() as session:
        job = get_or_404(session, NotificationJob, job_id)
        refusal = replay(session, job)
        if refusal:
            raise Problem(409, refusal)
        to_send = feed_tenant(session, job.tenant_id, job.queue, pulse().settings.delivery)
        session.refresh(job)
        view = JobView.of(job)
    pulse().dispatcher.send(to_send)
    return view


@bp.post("/deliveries/replay")
@operation(Replayed, 202, body=BulkReplay, also={200: WouldReplay})
def replay_many(body: BulkReplay):
    """Replay FAILED deliveries by filter; with dry_run, count them (200)"""
    with tenant_session() as session:
        stmt = select(NotificationJob).where(
            NotificationJob.tenant_id == tenant_id(), NotificationJob.status == JobStatus.FAILED, not_superseded()
        )
        # A deleted channel's dead letters have nowhere to go: they stay as they are.
        stmt = stmt.where(NotificationJob.channel_id.not_in(deleted_channels(tenant_id())))
        if body.channel_id is not None:
            stmt = stmt.where(NotificationJob.channel_id == body.channel_id)
        if body.since is not None:
            stmt = stmt.where(NotificationJob.created_at >= body.since)
        jobs = session.scalars(stmt.order_by(NotificationJob.job_id).with_for_update()).all()
        if body.dry_run:
            return WouldReplay(would_replay=len(jobs)), 200
        for job in jobs:
            replay(session, job)
        to_send = []
        for queue in sorted({job.queue for job in jobs}):
            to_send += feed_tenant(session, tenant_id(), queue, pulse().settings.delivery)
    pulse().dispatcher.send(to_send)
    return Replayed(replayed=len(jobs))
