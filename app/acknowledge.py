"""The acknowledge links' pages: `GET /ack/<token>` shows the alert, `POST /ack/<token>` acknowledges it.

GET changes nothing (link scanners and chat previews fetch links); the page's button posts
the form. The token is the whole authority: it names the tenant, the alert and the channel
whose notification carried it (app.acklinks). A link that is not genuine or has expired is
403 and changes nothing; a closed alert is 409.
"""

from __future__ import annotations

from flask import Blueprint, Flask, make_response, render_template

from app import alerts as lifecycle
from app.acklinks import AckClaim, InvalidLink
from app.models import Alert
from app.severity import severity_label
from app.status import AlertStatus
from app.views import AlertView
from app.web import pulse

bp = Blueprint("acknowledge", __name__)

# The page is self-contained: no script, its one form posts back here.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"


def _page(status: int, **context):
    response = make_response(render_template("ack.html", **context), status)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    # The token is in the URL: it must not leak to anywhere the page links to.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _claim(token: str) -> AckClaim | None:
    try:
        return pulse().ack_links.read(token)
    except InvalidLink:
        return None


def _refused():
    return _page(403, title="Link not valid", message="This acknowledge link is not valid or has expired. Nothing was changed.", alert=None)


def _described(alert: Alert) -> dict:
    return {"alert": alert, "label": severity_label(alert.severity)}


@bp.get("/ack/<token>")
def show(token: str):
    """The alert the link names, with an Acknowledge button; changes nothing."""
    claim = _claim(token)
    if claim is None:
        return _refused()
    with pulse().db.session(claim.tenant_id) as session:
        alert = session.get(Alert, claim.alert_id)
        if alert is None or alert.tenant_id != claim.tenant_id:
            return _page(404, title="Alert not found", message="This alert no longer exists.", alert=None)
        return _page(200, title=f"Alert #{alert.alert_id}", message=None, can_acknowledge=alert.status == AlertStatus.OPEN, **_described(alert))


@bp.post("/ack/<token>")
def acknowledge(token: str):
    """Acknowledge the alert as `link:<channel_id>`, with the usual jobs; repeating it changes nothing."""
    claim = _claim(token)
    if claim is None:
        return _refused()
    state = pulse()
    try:
        with state.db.session(claim.tenant_id) as session:
            outcome = lifecycle.acknowledge_alert(session, claim.tenant_id, claim.alert_id, by=claim.actor)
            if outcome is None:
                return _page(404, title="Alert not found", message="This alert no longer exists.", alert=None)
            to_send = lifecycle.jobs_to_send(session, outcome, state.settings.delivery)
            view = AlertView.of(outcome.alert)
            described = _described(outcome.alert)
    except lifecycle.Conflict:
        return _page(409, title="Alert closed", message="This alert is already closed: there is nothing to acknowledge.", alert=None)
    state.dispatcher.send(to_send)
    if outcome.event:
        state.events.alert_changed(claim.tenant_id, outcome.event, view.model_dump(mode="json"))
    message = "Acknowledged. Thank you." if outcome.event else "This alert was already acknowledged."
    return _page(200, title="Acknowledged", message=message, can_acknowledge=False, **described)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
