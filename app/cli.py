"""Flask CLI: `flask --app app create-user ...` and the demo seed of `make run`."""

from __future__ import annotations

import click
from flask import Flask

from app.auth import ROLES, hash_password, issue_token
from app.models import Tenant, User
from app.tenants import TENANT_NAME_RULE, is_tenant_name
from app.web import pulse


def upsert_user(session, tenant_id: str, email: str, role: str, password: str) -> User:
    """Create the tenant if needed, and the user (or update an existing user's role and password)."""
    if not is_tenant_name(tenant_id):
        raise click.BadParameter(f"{tenant_id!r} is not a tenant name: {TENANT_NAME_RULE}", param_hint="--tenant")
    if session.get(Tenant, tenant_id) is None:
        session.add(Tenant(tenant_id=tenant_id, name=tenant_id))
        session.flush()
    email = email.strip().lower()
    user = session.get(User, email)
    if user is None:
        user = User(email=email, tenant_id=tenant_id, role=role, password_hash=hash_password(password))
        session.add(user)
    else:
        if user.tenant_id != tenant_id:
            raise click.ClickException(f"{email} already belongs to tenant {user.tenant_id}")
        user.role = role
        user.password_hash = hash_password(password)
    session.flush()
    return user


def init_app(app: Flask) -> None:
    @app.cli.command("create-user")
    @click.option("--tenant", required=True, help=f"Tenant id ({TENANT_NAME_RULE}); created if it does not exist.")
    @click.option("--email", required=True)
    @click.option("--role", required=True, type=click.Choice(ROLES))
    @click.option("--password", required=True)
    def create_user(tenant: str, email: str, role: str, password: str) -> None:
        """Create or update a user and print a fresh token for them on the last line."""
        state = pulse()
        with state.db.system_scope("cli") as session:
            user = upsert_user(session, tenant, email, role, password)
            token, _ = issue_token(state.settings, user.email, user.tenant_id, user.role)
        click.echo(f"user {user.email} ({user.role}) in tenant {user.tenant_id}", err=True)
        click.echo(token)

    @app.cli.command("seed-demo")
    @click.option("--ttl", default=86400, help="Lifetime of the printed token, in seconds.")
    def seed_demo(ttl: int) -> None:
        """Create the demo tenant and admin if no user exists yet; print an admin token."""
        state = pulse()
        with state.db.system_scope("cli") as session:
            user = session.query(User).filter(User.role == "customer_admin").order_by(User.created_at).first()
            if user is None:
                user = upsert_user(session, "demo", "admin@demo.local", "customer_admin", "pulse-demo")
                click.echo("created tenant 'demo' with admin@demo.local / pulse-demo", err=True)
            token, _ = issue_token(state.settings, user.email, user.tenant_id, user.role, ttl=ttl)
        click.echo(token)
