"""POST /auth/token: email and password in, a bearer token out."""

from __future__ import annotations

from flask import Blueprint

from app.api.operations import operation
from app.auth import dummy_verify, issue_token, verify_password
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
    # Login happens before the tenant is known: Pulse's own scope reads the user.
    with state.db.system_scope("login") as session:
        user = session.get(User, body.email.strip().lower())
        if user is None:
            dummy_verify(body.password)
        if user is None or not verify_password(user.password_hash, body.password):
            raise Problem(401, "wrong email or password", headers={"WWW-Authenticate": 'Bearer realm="pulse"'})
        access_token, expires_in = issue_token(state.settings, user.email, user.tenant_id, user.role)
    return Token(access_token=access_token, token_type="Bearer", expires_in=expires_in)
