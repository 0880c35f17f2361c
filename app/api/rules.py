"""Routing rules: POST/GET /routing-rules, GET/PATCH/DELETE /routing-rules/{id}."""

from __future__ import annotations

from flask import Blueprint
from sqlalchemy import select

from app.api.common import paginate, parse_body, path_id, tenant_id, tenant_session
from app.models import NotificationChannel, RoutingRule
from app.problems import Problem, field_problem
from app.schemas import RuleCreate, RuleUpdate
from app.views import RULE_FIELDS, rule_view

bp = Blueprint("rules", __name__)


def get_rule(session, raw_id: str) -> RoutingRule:
    rule = session.scalars(
        select(RoutingRule).where(RoutingRule.tenant_id == tenant_id(), RoutingRule.rule_id == path_id(raw_id, "routing rule"))
    ).first()
    if rule is None:
        raise Problem(404, "routing rule not found")
    return rule


def _check_channel(session, channel_id: int) -> None:
    # A rule may only name one of the caller's own channels; anything else is a bad body.
    found = session.scalar(
        select(NotificationChannel.channel_id).where(
            NotificationChannel.tenant_id == tenant_id(), NotificationChannel.channel_id == channel_id
        )
    )
    if found is None:
        raise field_problem("channel_id", f"no channel {channel_id} in this tenant")


def _check_tag_filter(rule: RoutingRule) -> None:
    if rule.device_tag_val is not None and not rule.device_tag_key:
        raise field_problem("device_tag_val", "device_tag_val needs device_tag_key")


@bp.post("/routing-rules")
def create_rule():
    body = parse_body(RuleCreate)
    with tenant_session() as session:
        _check_channel(session, body.channel_id)
        rule = RoutingRule(tenant_id=tenant_id(), **body.model_dump())
        _check_tag_filter(rule)
        session.add(rule)
        session.flush()
        return rule_view(rule), 201


@bp.get("/routing-rules")
def list_rules():
    with tenant_session() as session:
        stmt = select(RoutingRule).where(RoutingRule.tenant_id == tenant_id())
        return paginate(session, stmt, RoutingRule.rule_id, rule_view)


@bp.get("/routing-rules/<rule_id>")
def read_rule(rule_id: str):
    with tenant_session() as session:
        return rule_view(get_rule(session, rule_id))


@bp.patch("/routing-rules/<rule_id>")
def update_rule(rule_id: str):
    body = parse_body(RuleUpdate)
    with tenant_session() as session:
        rule = get_rule(session, rule_id)
        changes = body.model_dump(include=body.model_fields_set)
        for name in ("channel_id", "deliver_on", "throttle_minutes", "priority", "is_enabled"):
            if name in changes and changes[name] is None:
                raise field_problem(name, "may not be null")
        if "channel_id" in changes:
            _check_channel(session, changes["channel_id"])
        for name in RULE_FIELDS:
            if name in changes:
                setattr(rule, name, changes[name])
        _check_tag_filter(rule)
        session.flush()
        return rule_view(rule)


@bp.delete("/routing-rules/<rule_id>")
def delete_rule(rule_id: str):
    with tenant_session() as session:
        session.delete(get_rule(session, rule_id))
    return "", 204
