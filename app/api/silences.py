"""Silences and maintenance windows: POST/GET /silences, GET/PATCH/DELETE /silences/{id}.

Each change is pushed to the tenant's live subscribers (a `silences` message). Deleting a
silence ends it: with `notify_on_end`, the OPEN notifications it held back go out now.
"""

from __future__ import annotations

from typing import Any, Sequence

from flask import Blueprint
from sqlalchemy import select

from app import silences
from app.api.common import check_channels, get_or_404, patch_changes, principal, tenant_id, tenant_session
from app.api.operations import operation
from app.api.pagination import Key, keyset_page, paginate
from app.api.queries import SilenceFilters
from app.delivery.jobs import feed_tenant
from app.models import NotificationJob, Silence, utcnow
from app.problems import field_problem
from app.schemas import SilenceCreate, SilenceUpdate
from app.severity import QUEUES
from app.views import Page, SilenceView
from app.web import pulse

bp = Blueprint("silences", __name__)

NOT_NULL_FIELDS = ("name", "matchers", "starts_at", "notify_on_end")


def _view(silence: Silence) -> SilenceView:
    return SilenceView.of(silence, active=silences.holds(silence, utcnow()))


def _checked(silence: Silence, anchored: bool = True) -> None:
    if silence.recurrence:
        # RFC 5545 times have whole seconds (dateutil drops the rest): so does the window's anchor.
        silence.starts_at = silence.starts_at.replace(microsecond=0)
    try:
        silences.check(silence.starts_at, silence.ends_at, silence.recurrence, utcnow() if anchored else None)
    except silences.InvalidSilence as exc:
        raise field_problem(exc.field, exc.message) from None


def _announce(action: str, view: SilenceView | dict[str, Any]) -> None:
    body = view.model_dump(mode="json") if isinstance(view, SilenceView) else view
    pulse().events.silences_changed(tenant_id(), action, body)


@bp.post("/silences")
@operation(SilenceView, 201, body=SilenceCreate)
def create_silence(body: SilenceCreate):
    """Create a silence or maintenance window"""
    with tenant_session() as session:
        check_channels(session, body.channel_ids, "channel_ids")
        fields = body.model_dump(exclude={"starts_at"})
        fields["matchers"] = body.matchers.model_dump(exclude_none=True)
        now = utcnow()
        silence = Silence(tenant_id=tenant_id(), starts_at=body.starts_at or now, created_by=principal().subject, created_at=now, **fields)
        _checked(silence)
        session.add(silence)
        session.flush()
        view = _view(silence)
    _announce("created", view)
    return view, 201


@bp.get("/silences")
@operation(Page[SilenceView], query=SilenceFilters)
def list_silences(query: SilenceFilters):
    """List silences, newest first (active=true: those in force now)"""
    with tenant_session() as session:
        stmt = select(Silence).where(Silence.tenant_id == tenant_id())
        if query.active is None:
            return paginate(session, stmt, (Silence.silence_id,), _view, query)
        now = utcnow()

        def fetch(after: Key | None, count: int) -> Sequence[Silence]:
            # Whether a window holds is decided by its RRULE, in Python: read in batches.
            found: list[Silence] = []
            below = after[0] if after else None
            while len(found) < count:
                batch_stmt = stmt if below is None else stmt.where(Silence.silence_id < below)
                batch = session.scalars(batch_stmt.order_by(Silence.silence_id.desc()).limit(200)).all()
                if not batch:
                    break
                found += [s for s in batch if silences.holds(s, now) is query.active]
                below = batch[-1].silence_id
            return found[:count]

        return keyset_page(fetch, lambda s: (s.silence_id,), (int,), _view, query)


@bp.get("/silences/<silence_id>")
@operation(SilenceView)
def read_silence(silence_id: str):
    """Read a silence"""
    with tenant_session() as session:
        return _view(get_or_404(session, Silence, silence_id))


@bp.patch("/silences/<silence_id>")
@operation(SilenceView, body=SilenceUpdate)
def update_silence(silence_id: str, body: SilenceUpdate):
    """Update a silence (a silence shortened to end now releases what it held on the next sweep)"""
    with tenant_session() as session:
        silence = get_or_404(session, Silence, silence_id)
        changes = patch_changes(body, NOT_NULL_FIELDS)
        if "channel_ids" in changes:
            check_channels(session, changes["channel_ids"], "channel_ids")
        if changes.get("matchers") is not None:
            changes["matchers"] = {k: v for k, v in changes["matchers"].items() if v is not None}
        for name, value in changes.items():
            setattr(silence, name, value)
        _checked(silence, anchored="starts_at" in changes or "recurrence" in changes)
        session.flush()
        view = _view(silence)
    _announce("updated", view)
    return view


@bp.delete("/silences/<silence_id>")
@operation(None, 204)
def delete_silence(silence_id: str):
    """Delete a silence: it ends now (with notify_on_end, what it held back is sent)"""
    with tenant_session() as session:
        silence = get_or_404(session, Silence, silence_id)
        gone = {"silence_id": silence.silence_id, "tenant_id": silence.tenant_id}
        released = silences.release_ended(session, utcnow(), only_silence=silence)
        session.delete(silence)
        session.flush()
        to_send = []
        if released.released:
            queues = set(session.scalars(select(NotificationJob.queue).where(NotificationJob.job_id.in_(released.released))))
            for queue in (q for q in QUEUES if q in queues):
                to_send += feed_tenant(session, tenant_id(), queue, pulse().settings.delivery)
    pulse().dispatcher.send(to_send)
    _announce("deleted", gone)
    return "", 204
