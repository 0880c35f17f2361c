"""The REST API under /api/v2: authentication for every route but the public ones."""

from __future__ import annotations

from flask import Blueprint, Flask, g, request

from app.auth import ROLES, InvalidToken, principal_from_claims
from app.problems import Problem
from app.web import pulse

# Endpoints reachable without a token.
PUBLIC_ENDPOINTS = {"api.auth.token", "api.openapi.spec"}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# POSTs that change nothing, open to viewers.
READ_ONLY_POSTS = {"api.explain.explain"}


def _authenticate():
    """Size limit first, then the bearer token and the role, for every non-public route."""
    limit = request.max_content_length
    if request.content_length is not None and limit is not None and request.content_length > limit:
        # Answered from Content-Length alone: the body is never read.
        raise Problem(413, "the request body is larger than 1 MiB")
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "a bearer token is required", headers={"WWW-Authenticate": 'Bearer realm="pulse"'})
    try:
        claims = pulse().tokens.claims(token.strip())
    except InvalidToken as exc:
        raise Problem(401, str(exc), headers={"WWW-Authenticate": 'Bearer realm="pulse", error="invalid_token"'}) from None
    principal = principal_from_claims(claims)
    if principal.role not in ROLES:
        raise Problem(403, f"role {principal.role!r} has no access to this API")
    if not pulse().tenants.exists(principal.tenant_id):
        raise Problem(401, "the token names a tenant that does not exist", headers={"WWW-Authenticate": 'Bearer realm="pulse", error="invalid_token"'})
    if request.method in WRITE_METHODS and not principal.can_write and request.endpoint not in READ_ONLY_POSTS:
        raise Problem(403, "viewers have read-only access")
    g.principal = principal
    return None


def init_app(app: Flask) -> None:
    """Register /api/v2 (a blueprint made per app, so tests can build several apps)."""
    from app.api import alerts, auth, channels, deliveries, devices, explain, openapi, rules, silences, telemetry

    api = Blueprint("api", __name__, url_prefix="/api/v2")
    api.before_request(_authenticate)
    for module in (auth, devices, telemetry, alerts, channels, rules, explain, silences, deliveries, openapi):
        api.register_blueprint(module.bp)
    app.register_blueprint(api)
