"""POST /routing/explain: what posting an alert would do now, per rule, changing nothing.

The answer comes from `app.alerts.route_event`, the function dispatch creates its jobs
from, so explain and dispatch cannot disagree. Viewers may call it: it writes nothing.
"""

from __future__ import annotations

from flask import Blueprint
from sqlalchemy import select

from app.alerts import route_event
from app.api.common import tenant_id, tenant_session
from app.api.operations import operation
from app.models import Device, utcnow
from app.routing import SEND, AlertFacts, effective_tags
from app.schemas import ExplainRequest
from app.views import Explanation, RuleExplained

bp = Blueprint("explain", __name__)


@bp.post("/routing/explain")
@operation(Explanation, body=ExplainRequest)
def explain(body: ExplainRequest):
    """Explain what each routing rule would do with an alert now (writes nothing)"""
    alert = body.alert
    with tenant_session() as session:
        device = session.scalars(select(Device).where(Device.tenant_id == tenant_id(), Device.device_id == alert.device_id)).first()
        facts = AlertFacts(
            severity=alert.severity,
            alert_type=alert.alert_type,
            device_id=alert.device_id,
            # As on posting: an alert without a site takes its device's.
            site_id=alert.site_id or (device.site_id if device else None),
            tags=effective_tags(device.tags if device else None, alert.details),
        )
        decisions = route_event(session, tenant_id(), facts, body.event_type, utcnow(), enabled_only=False)
        return Explanation(
            event_type=body.event_type,
            rules=[
                RuleExplained(
                    rule_id=d.rule.rule_id,
                    channel_id=d.rule.channel_id,
                    outcome=d.outcome,
                    failed=list(d.failed),
                    silence_id=d.silence_id or None,
                )
                for d in decisions
            ],
            channels=[d.rule.channel_id for d in decisions if d.outcome == SEND],
        )
