"""PostgreSQL's row-level security keeps each tenant's rows to that tenant, under the app's queries.

Superusers bypass RLS, so the check runs as an ordinary role, as a production deployment
that does not connect as the database owner's superuser would.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.support import post_alert

ROLE = "pulse_rls_probe"


@pytest.fixture
def probe_role(owner_engine):
    with owner_engine.begin() as connection:
        connection.execute(text(f"DO $$ BEGIN CREATE ROLE {ROLE} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"))
        connection.execute(text(f"GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO {ROLE}"))
    return ROLE


def visible_alert_tenants(engine, scope: str | None) -> set[str]:
    with engine.begin() as connection:
        connection.execute(text(f"SET LOCAL ROLE {ROLE}"))
        if scope is not None:
            connection.execute(text("SELECT set_config('app.tenant_id', :scope, true)"), {"scope": scope})
        return set(connection.execute(text("SELECT DISTINCT tenant_id FROM alerts")).scalars())


def test_a_tenant_scope_sees_only_that_tenants_rows(client, owner_engine, tenant, other_tenant, probe_role):
    post_alert(client, tenant)
    post_alert(client, other_tenant)
    assert visible_alert_tenants(owner_engine, tenant.tenant_id) == {tenant.tenant_id}
    assert visible_alert_tenants(owner_engine, other_tenant.tenant_id) == {other_tenant.tenant_id}


def test_no_scope_sees_no_rows(client, owner_engine, tenant, probe_role):
    post_alert(client, tenant)
    assert visible_alert_tenants(owner_engine, None) == set()


def test_the_system_scope_sees_every_tenant(client, owner_engine, tenant, other_tenant, probe_role):
    post_alert(client, tenant)
    post_alert(client, other_tenant)
    assert {tenant.tenant_id, other_tenant.tenant_id} <= visible_alert_tenants(owner_engine, "*")


def test_a_tenant_scope_cannot_write_another_tenants_row(client, owner_engine, tenant, other_tenant, probe_role):
    with pytest.raises(Exception, match="row-level security"):
        with owner_engine.begin() as connection:
            connection.execute(text(f"SET LOCAL ROLE {ROLE}"))
            connection.execute(text("SELECT set_config('app.tenant_id', :scope, true)"), {"scope": tenant.tenant_id})
            connection.execute(
                text("INSERT INTO devices (tenant_id, device_id, tags, created_at) VALUES (:t, 'intruder', '{}', now())"),
                {"t": other_tenant.tenant_id},
            )
