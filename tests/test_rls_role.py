"""Row-level security proven on the application's own role (DESIGN §4).

The suite's app, web processes and workers connect as a role that is neither superuser, nor
owner, nor BYPASSRLS (tests.pg_roles); the migrations run as the owner. Here a query that
forgets its tenant filter, run through the app's own connection under one tenant's scope,
still sees only that tenant's rows. A process whose role would bypass the policies says so
when it starts.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import sqlalchemy
from sqlalchemy import text

from app.db import Database
from tests.pg_roles import APP_ROLE, as_role
from tests.support import ROOT, post_alert


def test_the_app_connects_as_its_own_role_bound_by_row_level_security(db):
    with db.engine.connect() as connection:
        role, superuser, bypass = connection.execute(
            text("SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        ).one()
        owners = set(connection.execute(text("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")).scalars())
    assert role == APP_ROLE
    assert not superuser and not bypass
    assert role not in owners
    assert db.rls_bypass() is None


def test_a_forgotten_tenant_filter_sees_only_the_scoped_tenants_rows(client, db, tenant, other_tenant):
    mine = post_alert(client, tenant)
    theirs = post_alert(client, other_tenant)
    with db.session(tenant.tenant_id) as session:
        # No WHERE tenant_id = ...: the bug row-level security is there to contain.
        rows = session.execute(text("SELECT alert_id, tenant_id FROM alerts")).all()
    assert {tenant_id for _, tenant_id in rows} == {tenant.tenant_id}
    assert mine["alert_id"] in {alert_id for alert_id, _ in rows}
    assert theirs["alert_id"] not in {alert_id for alert_id, _ in rows}


def test_a_forgotten_filter_cannot_change_another_tenants_rows(client, db, tenant, other_tenant):
    post_alert(client, tenant)
    theirs = post_alert(client, other_tenant)
    with db.session(tenant.tenant_id) as session:
        session.execute(text("UPDATE alerts SET message = 'overwritten'"))
    with db.session(other_tenant.tenant_id) as session:
        assert session.execute(text("SELECT message FROM alerts WHERE alert_id = :id"), {"id": theirs["alert_id"]}).scalar() != "overwritten"


def test_a_tenant_scope_cannot_insert_a_row_for_another_tenant(db, tenant, other_tenant):
    with pytest.raises(sqlalchemy.exc.ProgrammingError, match="row-level security"):
        with db.session(tenant.tenant_id) as session:
            session.execute(
                text("INSERT INTO devices (tenant_id, device_id, tags, created_at) VALUES (:t, 'intruder', '{}', now())"),
                {"t": other_tenant.tenant_id},
            )


def test_without_a_scope_the_apps_role_sees_nothing(client, db, tenant):
    post_alert(client, tenant)
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alerts")).scalar() == 0


def start_output(database_url: str) -> str:
    """What a web process logs when it starts with `database_url`."""
    result = subprocess.run(
        [sys.executable, "-c", "from app import create_app; create_app()"],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": database_url}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_a_superuser_connection_is_warned_about_at_start():
    output = start_output(os.environ["MIGRATION_DATABASE_URL"])
    assert "bypasses row-level security" in output and "is a superuser" in output


def test_the_apps_own_role_starts_without_that_warning():
    assert "bypasses row-level security" not in start_output(os.environ["DATABASE_URL"])


def test_a_bypassrls_role_is_named_as_such(owner_engine):
    role = "pulse_test_bypass"
    with owner_engine.connect() as connection:
        connection.execute(text(
            f"DO $$ BEGIN CREATE ROLE {role} LOGIN BYPASSRLS; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        ))
        connection.commit()
    database = Database(as_role(os.environ["MIGRATION_DATABASE_URL"], role))
    try:
        assert database.rls_bypass() == f"role {role!r} has BYPASSRLS"
    finally:
        database.dispose()
