"""Routing rules: POST/GET /routing-rules, GET/PATCH/DELETE /routing-rules/{id}."""

from __future__ import annotations

from flask import Blueprint
from sqlalchemy import select

from app.api.common import check_channels, get_or_404, patch_changes, tenant_id, tenant_session
from app.api.operations import operation
from app.api.pagination import paginate
from app.api.queries import ListQuery
from app.models import NotificationChannel, RoutingRule
from app.problems import field_problem
from app.schemas import RuleCreate, RuleUpdate
from app.views import Page, RuleView

bp = Blueprint("rules", __name__)

# Fields a PATCH may leave out but not set to null.
NOT_NULL_FIELDS = ("channel_id", "deliver_on", "throttle_minutes", "priority", "is_enabled")


def _check_channel(session, channel_id: int) -> None:
    # A rule may only name one of the caller's own channels; anything else is a bad body.
    found = session.scalar(
        select(NotificationChannel.channel_id).where(
            NotificationChannel.tenant_id == tenant_id(),
            NotificationChannel.channel_id == channel_id,
            NotificationChannel.deleted_at.is_(None),
        )
    )
    if found is None:
        raise field_problem("channel_id", f"no channel {channel_id} in this tenant")


def _check_escalation(session, steps: list[dict] | None) -> None:
    for index, step in enumerate(steps or []):
        check_channels(session, step["channel_ids"], f"escalation.{index}.channel_ids")


def _check_tag_filter(rule: RoutingRule) -> None:
    if rule.device_tag_val is not None and not rule.device_tag_key:
        raise field_problem("device_tag_val", "device_tag_val needs device_tag_key")


@bp.post("/routing-rules")
@operation(RuleView, 201, body=RuleCreate)
def create_rule(body: RuleCreate):
    """Create a routing rule"""
    with tenant_session() as session:
        _check_channel(session, body.channel_id)
        _check_escalation(session, body.model_dump()["escalation"])
        rule = RoutingRule(tenant_id=tenant_id(), **body.model_dump())
        _check_tag_filter(rule)
        session.add(rule)
        session.flush()
        return RuleView.of(rule)


@bp.get("/routing-rules")
@operation(Page[RuleView], query=ListQuery)
def list_rules(query: ListQuery):
    """List routing rules, newest first"""
    with tenant_session() as session:
        stmt = select(RoutingRule).where(RoutingRule.tenant_id == tenant_id())
        return paginate(session, stmt, (RoutingRule.rule_id,), RuleView.of, query)


@bp.get("/routing-rules/<rule_id>")
@operation(RuleView)
def read_rule(rule_id: str):
    """Read a routing rule"""
    with tenant_session() as session:
        return RuleView.of(get_or_404(session, RoutingRule, rule_id))


@bp.patch("/routing-rules/<rule_id>")
@operation(RuleView, body=RuleUpdate)
def update_rule(rule_id: str, body: RuleUpdate):
    """Update a routing rule"""
    with tenant_session() as session:
        rule = get_or_404(session, RoutingRule, rule_id)
        changes = patch_changes(body, NOT_NULL_FIELDS)
        if "channel_id" in changes:
            _check_channel(session, changes["channel_id"])
        if "escalation" in changes:
            _check_escalation(session, changes["escalation"])
        for name, value in changes.items():
            setattr(rule, name, value)
        _check_tag_filter(rule)
        session.flush()
        return RuleView.of(rule)


@bp.delete("/routing-rules/<rule_id>")
@operation(None, 204)
def delete_rule(rule_id: str):
    """Delete a routing rule"""
    with tenant_session() as session:
        session.delete(get_or_404(session, RoutingRule, rule_id))
    return "", 204
