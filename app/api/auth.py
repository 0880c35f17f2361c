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
        stored = (user.password_hash, user.email, user.tenant_id, user.role) if user is not None else None
    if not state.passwords.verify(stored[0] if stored else None, body.password) or stored is None:
        raise Problem(401, "wrong email or password", headers={"WWW-Authenticate": 'Bearer realm="pulse"'})
    _, email, tenant_id, role = stored
    access_token, expires_in = issue_token(state.settings, email, tenant_id, role)
    return Token(access_token=access_token, token_type="Bearer", expires_in=expires_in)
