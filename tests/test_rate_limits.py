"""Rate limits (DESIGN §3, §5a): ingest per tenant, login per client address and per email.

Each test builds an app with low limits of its own and uses tenants, emails and client
addresses of its own, so no count leaks from one test into another (the counters live in the
suite's Redis).
"""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import func, select

from app.models import Alert
from tests.support import make_tenant, settings_with, wait_for

ALERT = {"device_id": "pump-1", "alert_type": "overheat", "severity": 4, "message": "hot"}


@pytest.fixture
def limited_app(app):
    """Build apps with the given environment on top of the suite's; disposed at the end."""
    from app import create_app

    made = []

    def build(**env: str):
        application = create_app(settings_with(env), test_config={"TESTING": True})
        made.append(application)
        return application

    yield build
    for application in made:
        application.extensions["pulse"].db.dispose()


def random_address() -> str:
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"


def client_from(application, address: str | None = None):
    """A test client whose requests come from `address` (a fresh one by default)."""
    client = application.test_client()
    client.environ_base["REMOTE_ADDR"] = address or random_address()
    return client


def assert_rate_limited(response) -> int:
    assert response.status_code == 429, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 429 and "rate limit" in body["detail"]
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60
    return int(retry_after)


def alert_count(db, tenant_id: str) -> int:
    with db.session(tenant_id) as session:
        return session.scalar(select(func.count()).select_from(Alert).where(Alert.tenant_id == tenant_id))


# Ingest, per tenant ------------------------------------------------------------------------

def test_ingest_over_the_tenants_limit_is_429_and_creates_nothing(limited_app, db):
    application = limited_app(RATE_LIMIT_INGEST="3/minute")
    tenant = make_tenant(application)
    client = client_from(application)
    opened = client.post("/api/v2/alerts", json=ALERT, headers=tenant.admin)
    assert opened.status_code == 201
    # Opens, acknowledges and telemetry posts share the one budget.
    assert client.post(f"/api/v2/alerts/{opened.get_json()['alert_id']}/acknowledge", headers=tenant.admin).status_code == 200
    assert client.post("/api/v2/devices/pump-1/telemetry", json={"metrics": {"t": 1.5}}, headers=tenant.admin).status_code == 201

    refused = client.post("/api/v2/alerts", json={**ALERT, "alert_type": "leak"}, headers=tenant.admin)
    assert_rate_limited(refused)
    assert alert_count(db, tenant.tenant_id) == 1
    assert_rate_limited(client.post(f"/api/v2/alerts/{opened.get_json()['alert_id']}/close", headers=tenant.admin))
    assert client.get(f"/api/v2/alerts/{opened.get_json()['alert_id']}", headers=tenant.admin).get_json()["status"] == "ACKNOWLEDGED"
    assert_rate_limited(client.post("/api/v2/devices/pump-1/telemetry", json={"metrics": {"t": 2}}, headers=tenant.admin))


def test_one_tenants_limit_does_not_touch_another_tenant(limited_app):
    application = limited_app(RATE_LIMIT_INGEST="2/minute")
    noisy, quiet = make_tenant(application), make_tenant(application)
    client = client_from(application)
    for number in range(2):
        assert client.post("/api/v2/alerts", json={**ALERT, "alert_type": f"t{number}"}, headers=noisy.admin).status_code == 201
    assert_rate_limited(client.post("/api/v2/alerts", json={**ALERT, "alert_type": "t3"}, headers=noisy.admin))
    assert client.post("/api/v2/alerts", json=ALERT, headers=quiet.admin).status_code == 201


def test_reads_are_not_counted_as_ingest(limited_app):
    application = limited_app(RATE_LIMIT_INGEST="1/minute")
    tenant = make_tenant(application)
    client = client_from(application)
    for _ in range(5):
        assert client.get("/api/v2/alerts", headers=tenant.admin).status_code == 200
    assert client.post("/api/v2/alerts", json=ALERT, headers=tenant.admin).status_code == 201


def test_after_retry_after_the_tenant_may_post_again(limited_app):
    application = limited_app(RATE_LIMIT_INGEST="1/second")
    tenant = make_tenant(application)
    client = client_from(application)
    assert client.post("/api/v2/alerts", json=ALERT, headers=tenant.admin).status_code == 201
    retry_after = assert_rate_limited(client.post("/api/v2/alerts", json={**ALERT, "alert_type": "b"}, headers=tenant.admin))
    time.sleep(retry_after)
    assert client.post("/api/v2/alerts", json={**ALERT, "alert_type": "b"}, headers=tenant.admin).status_code == 201


def test_ingest_goes_on_unlimited_while_the_limits_redis_is_down(limited_app, db, capsys):
    application = limited_app(RATE_LIMIT_INGEST="1/minute", REDIS_URL="redis://127.0.0.1:9/0")
    tenant = make_tenant(application)
    client = client_from(application)
    for number in range(3):
        assert client.post("/api/v2/alerts", json={**ALERT, "alert_type": f"t{number}"}, headers=tenant.admin).status_code == 201
    assert alert_count(db, tenant.tenant_id) == 3
    assert "ingest rate limit not checked: ConnectionError" in capsys.readouterr().err


def test_off_disables_the_ingest_limit(limited_app):
    application = limited_app(RATE_LIMIT_INGEST="off")
    tenant = make_tenant(application)
    client = client_from(application)
    assert client.post("/api/v2/devices", json={"device_id": "pump-1"}, headers=tenant.admin).status_code == 201
    for number in range(15):
        assert client.post("/api/v2/devices/pump-1/telemetry", json={"metrics": {"n": number}}, headers=tenant.admin).status_code == 201


# Login, per client address and per email ---------------------------------------------------

def login(client, email: str, password: str = "wrong-password", **headers: str):
    return client.post("/api/v2/auth/token", json={"email": email, "password": password}, headers=headers)


def test_logins_over_the_limit_from_one_address_are_429(limited_app):
    application = limited_app(RATE_LIMIT_AUTH="3/minute")
    tenant = make_tenant(application)
    client = client_from(application)
    for number in range(3):
        assert login(client, f"nobody-{number}@{tenant.tenant_id}.test").status_code == 401
    # The right password does not help once the address is over its limit.
    assert_rate_limited(login(client, tenant.admin_email, "admin-password"))
    # Another address may still sign in.
    assert login(client_from(application), tenant.admin_email, "admin-password").status_code == 200


def test_logins_over_the_limit_for_one_email_are_429_from_any_address(limited_app):
    application = limited_app(RATE_LIMIT_AUTH="3/minute")
    tenant = make_tenant(application)
    for _ in range(3):
        assert login(client_from(application), tenant.admin_email).status_code == 401
    # The email is spelled differently and comes from a new address: it is still the same user.
    assert_rate_limited(login(client_from(application), "  " + tenant.admin_email.upper(), "admin-password"))


def test_x_forwarded_for_is_ignored_without_trusted_proxies(limited_app):
    application = limited_app(RATE_LIMIT_AUTH="3/minute")
    client = client_from(application)
    for number in range(3):
        assert login(client, f"p{number}-{uuid.uuid4().hex[:6]}@x.test", **{"X-Forwarded-For": random_address()}).status_code == 401
    assert_rate_limited(login(client, f"last-{uuid.uuid4().hex[:6]}@x.test", **{"X-Forwarded-For": random_address()}))


def test_with_one_trusted_proxy_the_client_address_comes_from_x_forwarded_for(limited_app):
    application = limited_app(RATE_LIMIT_AUTH="3/minute", TRUSTED_PROXY_HOPS="1")
    proxy = client_from(application)
    client_address = random_address()
    for number in range(3):
        # A client cannot escape by prepending addresses of its choice: only the hop the
        # trusted proxy added counts.
        spoofed = f"{random_address()}, {client_address}"
        assert login(proxy, f"q{number}-{uuid.uuid4().hex[:6]}@x.test", **{"X-Forwarded-For": spoofed}).status_code == 401
    assert_rate_limited(login(proxy, f"r-{uuid.uuid4().hex[:6]}@x.test", **{"X-Forwarded-For": client_address}))
    # Another client behind the same proxy is a different address.
    assert login(proxy, f"s-{uuid.uuid4().hex[:6]}@x.test", **{"X-Forwarded-For": random_address()}).status_code == 401


def test_off_disables_the_login_limit(limited_app):
    application = limited_app(RATE_LIMIT_AUTH="off")
    client = client_from(application)
    for _ in range(15):
        assert login(client, "someone@nowhere.test").status_code == 401


def test_a_malformed_login_body_is_still_limited_and_never_a_500(limited_app):
    application = limited_app(RATE_LIMIT_AUTH="2/minute")
    client = client_from(application)
    statuses = [client.post("/api/v2/auth/token", data=b"{not json", headers={"Content-Type": "application/json"}).status_code for _ in range(4)]
    assert statuses[:2] == [400, 400] and statuses[2:] == [429, 429]


def test_a_limit_that_does_not_parse_is_a_configuration_error():
    from app.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="RATE_LIMIT_AUTH"):
        settings_with({"RATE_LIMIT_AUTH": "lots"})


def test_rate_limited_operations_declare_429(client):
    spec = client.get("/api/v2/openapi.json").get_json()
    for path, method in [
        ("/alerts", "post"),
        ("/alerts/{alert_id}/acknowledge", "post"),
        ("/alerts/{alert_id}/close", "post"),
        ("/devices/{device_id}/telemetry", "post"),
        ("/auth/token", "post"),
    ]:
        assert "429" in spec["paths"][path][method]["responses"], (path, method)


def test_the_limiter_counts_in_redis(limited_app, redis):
    application = limited_app(RATE_LIMIT_AUTH="5/minute")
    login(client_from(application), f"counted-{uuid.uuid4().hex[:6]}@x.test")
    assert wait_for(lambda: list(redis.scan_iter("*pulse-rate*")), timeout=5, message="a rate-limit key in Redis")
