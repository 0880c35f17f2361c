"""POST /auth/token: email and password in, a bearer token out."""

from __future__ import annotations

from flask import Blueprint

from app.api.operations import operation
from app.auth import issue_token
from app.models import User
from app.problems import Problem
from app.schemas import TokenRequest
from app.views import Token
from app.web import pulse

bp = Blueprint("auth", __name__)


@bp.post("/auth/token", endpoint="token")
@operation(Token, body=TokenRequest, errors=(401, 429))
def token(body: TokenRequest):
    """Exchange email and password for a bearer token"""
    state = pulse()
    # Login happens before the tenant is known: Pulse's own scope reads the user. The
    # transaction ends before the hash is checked, so no connection waits on the CPU.
    with state.db.system_scope("login") as session:
        user = session.get(User, body.email.strip().lower())
        found = (user.password_hash, user.email, user.tenant_id, user.role) if user is not None else None
    # An unknown email costs a check too (against a dummy hash): timing tells no emails apart.
    matches = state.passwords.verify(found[0] if found else None, body.password)
    if found is None or not matches:
        raise Problem(401, "wrong email or password", headers={"WWW-Authenticate": 'Bearer realm="pulse"'})
    _, email, tenant_id, role = found
    access_token, expires_in = issue_token(state.settings, email, tenant_id, role)
    return Token(access_token=access_token, token_type="Bearer", expires_in=expires_in)
