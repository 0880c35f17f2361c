"""Tenant names (DESIGN §6): the rule in `create-user` and in tokens; unknown tenants are 401 / 4001;
no unit of work reaches every tenant's rows unless it is a named system task."""

from __future__ import annotations

import os
import time
import uuid

import jwt
import pytest
from sqlalchemy import func, select, text

from app.models import Alert, Tenant
from app.tenants import is_tenant_name
from tests.webserver import WebServer

NAMES = [
    ("acme", True),
    ("A", True),
    ("t-1.prod_eu", True),
    ("9lives", True),
    ("x" * 64, True),
    ("x" * 65, False),
    ("", False),
    ("*", False),
    ("-acme", False),
    (".acme", False),
    ("_acme", False),
    ("acme corp", False),
    ("acme/eu", False),
    ("acme\n", False),
    ("acmé", False),
    ("acme%", False),
    ("acme'--", False),
]


@pytest.mark.parametrize("name, valid", NAMES, ids=[repr(name) for name, _ in NAMES])
def test_the_tenant_name_rule(name, valid):
    assert is_tenant_name(name) is valid


def token_for(tenant_id: str, role: str = "customer_admin") -> str:
    now = int(time.time())
    claims = {"sub": "someone@example.test", "tenant_id": tenant_id, "role": role, "iat": now, "exp": now + 600}
    return jwt.encode(claims, os.environ["SECRET_KEY"].encode(), algorithm="HS256")


@pytest.mark.parametrize("name", ["*", "-acme", "acme corp", "x" * 65, "acme/eu"])
def test_create_user_refuses_a_name_that_breaks_the_rule(runner, db, name):
    result = runner.invoke(args=["create-user", "--tenant", name, "--email", f"{uuid.uuid4().hex[:8]}@bad.test", "--role", "customer_admin", "--password", "pw-123456"])
    assert result.exit_code != 0
    assert "not a tenant name" in result.output
    with db.system_scope("tests") as session:
        assert session.get(Tenant, name) is None


ENDPOINTS = [
    ("get", "/api/v2/alerts"),
    ("get", "/api/v2/devices"),
    ("get", "/api/v2/channels"),
    ("get", "/api/v2/routing-rules"),
    ("get", "/api/v2/deliveries"),
    ("post", "/api/v2/alerts"),
    ("post", "/api/v2/devices/pump-1/telemetry"),
    ("delete", "/api/v2/channels/1"),
]


@pytest.mark.parametrize("method, path", ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
def test_a_token_for_a_tenant_that_does_not_exist_is_401_and_changes_nothing(client, db, method, path):
    ghost = "ghost-" + uuid.uuid4().hex[:8]
    body = {"device_id": "pump-1", "alert_type": "overheat", "severity": 4, "message": "hot"} if path.endswith("/alerts") else None
    response = getattr(client, method)(path, json=body, headers={"Authorization": f"Bearer {token_for(ghost)}"})
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert "does not exist" in response.get_json()["detail"]
    with db.system_scope("tests") as session:
        assert session.get(Tenant, ghost) is None
        assert session.scalar(select(func.count()).select_from(Alert).where(Alert.tenant_id == ghost)) == 0


@pytest.mark.parametrize("name", ["*", "acme corp", "-x", "x" * 65, "a%"])
def test_a_token_whose_tenant_is_not_a_name_is_401(client, name):
    response = client.get("/api/v2/alerts", headers={"Authorization": f"Bearer {token_for(name)}"})
    assert response.status_code == 401
    assert "not a tenant name" in response.get_json()["detail"]


def test_a_tenant_made_by_create_user_is_known_at_once(runner, client):
    name = "fresh-" + uuid.uuid4().hex[:8]
    # Asked before it exists (an unknown tenant is never remembered) ...
    assert client.get("/api/v2/alerts", headers={"Authorization": f"Bearer {token_for(name)}"}).status_code == 401
    result = runner.invoke(args=["create-user", "--tenant", name, "--email", f"ops@{name}.test", "--role", "customer_admin", "--password", "pw-123456"])
    assert result.exit_code == 0, result.output
    # ... and accepted right after.
    assert client.get("/api/v2/alerts", headers={"Authorization": f"Bearer {token_for(name)}"}).status_code == 200


@pytest.fixture(scope="module")
def web(app):
    server = WebServer("tenant-names")
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("tenant_id", ["ghost-never-made", "*", "acme corp"])
def test_the_live_feed_closes_4001_for_a_tenant_that_does_not_exist_or_is_not_a_name(web, tenant_id):
    client = web.connect(token_for(tenant_id))
    assert client.close_code()[0] == 4001


def test_the_live_feed_accepts_a_known_tenant(web, tenant):
    client = web.connect(tenant.admin_token)
    assert client.subscribe_alerts() == []
    client.close()


# The wildcard scope ---------------------------------------------------------------------

@pytest.mark.parametrize("scope", ["*", "", None, "acme corp"])
def test_a_tenant_session_never_takes_the_wildcard_or_a_non_name(db, scope):
    with pytest.raises(ValueError, match="system_scope"):
        with db.session(scope):
            pass
    with pytest.raises(ValueError, match="system_scope"):
        with db.work(scope):
            pass


def test_the_session_has_no_default_scope(db):
    with pytest.raises(TypeError):
        db.session()
    with pytest.raises(TypeError):
        db.work()


def test_a_system_scope_must_name_its_task(db):
    with pytest.raises(ValueError, match="name the task"):
        with db.system_scope(""):
            pass
    with pytest.raises(TypeError):
        db.system_scope()


def test_a_system_scope_is_the_wildcard_and_a_tenant_session_is_its_tenant(db, tenant):
    with db.system_scope("tests") as session:
        assert session.scalar(text("SELECT current_setting('app.tenant_id', true)")) == "*"
    with db.session(tenant.tenant_id) as session:
        assert session.scalar(text("SELECT current_setting('app.tenant_id', true)")) == tenant.tenant_id
