"""Tokens, roles and the create-user command (DESIGN §6)."""

from __future__ import annotations

import os
import time
from dataclasses import replace

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.auth import InvalidToken, VerifiedTokens, decode_token
from app.config import Settings


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def signed(claims: dict, key: str | None = None, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, (key or os.environ["SECRET_KEY"]).encode() if algorithm == "HS256" else key, algorithm=algorithm)


def claims_for(tenant, **overrides) -> dict:
    now = int(time.time())
    claims = {"sub": tenant.admin_email, "tenant_id": tenant.tenant_id, "role": "customer_admin", "iat": now, "exp": now + 600}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def test_token_for_email_and_password(client, tenant):
    response = client.post("/api/v2/auth/token", json={"email": tenant.admin_email, "password": "admin-password"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    assert client.get("/api/v2/alerts", headers=bearer(body["access_token"])).status_code == 200
    claims = jwt.decode(body["access_token"], os.environ["SECRET_KEY"].encode(), algorithms=["HS256"])
    assert claims["tenant_id"] == tenant.tenant_id and claims["role"] == "customer_admin"
    assert {"sub", "exp", "iat"} <= set(claims)


@pytest.mark.parametrize("email, password", [("admin@nowhere.test", "admin-password"), (None, "wrong-password")])
def test_wrong_credentials_are_401(client, tenant, email, password):
    response = client.post("/api/v2/auth/token", json={"email": email or tenant.admin_email, "password": password})
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"


def test_the_password_is_stored_as_a_real_hash(db, tenant):
    from app.models import User

    with db.system_scope("tests") as session:
        stored = session.get(User, tenant.admin_email).password_hash
    assert "admin-password" not in stored and stored.startswith("scrypt:")


def test_missing_token_is_401(client):
    response = client.get("/api/v2/alerts")
    assert response.status_code == 401
    assert response.get_json()["status"] == 401


@pytest.mark.parametrize(
    "case",
    ["expired", "forged", "alg-none", "wrong-algorithm", "garbage", "no-tenant", "no-role", "no-sub", "no-exp", "no-iat"],
)
def test_bad_tokens_are_401(client, tenant, case):
    if case == "expired":
        token = signed(claims_for(tenant, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600))
    elif case == "forged":
        token = signed(claims_for(tenant), key="not-the-secret-key")
    elif case == "alg-none":
        token = jwt.encode(claims_for(tenant), None, algorithm="none")
    elif case == "wrong-algorithm":
        token = jwt.encode(claims_for(tenant), os.environ["SECRET_KEY"].encode(), algorithm="HS512")
    elif case == "garbage":
        token = "not.a.token"
    else:
        token = signed(claims_for(tenant, **{case.removeprefix("no-").replace("tenant", "tenant_id"): None}))
    response = client.get("/api/v2/alerts", headers=bearer(token))
    assert response.status_code == 401, case


def test_exp_has_at_most_30_seconds_of_leeway(client, tenant):
    just_expired = signed(claims_for(tenant, exp=int(time.time()) - 10))
    long_expired = signed(claims_for(tenant, exp=int(time.time()) - 45))
    assert client.get("/api/v2/alerts", headers=bearer(just_expired)).status_code == 200
    assert client.get("/api/v2/alerts", headers=bearer(long_expired)).status_code == 401


def test_an_unknown_role_is_403(client, tenant):
    token = signed(claims_for(tenant, role="operator"))
    assert client.get("/api/v2/alerts", headers=bearer(token)).status_code == 403


VIEWER_WRITES = [
    ("post", "/api/v2/alerts", {"device_id": "d", "alert_type": "t", "severity": 1, "message": "m"}),
    ("post", "/api/v2/devices", {"device_id": "d"}),
    ("post", "/api/v2/channels", {"name": "n", "channel_type": "webhook", "config": {"url": "http://127.0.0.1:9/"}}),
    ("post", "/api/v2/routing-rules", {"channel_id": 1}),
    ("post", "/api/v2/channels/1/test", None),
    ("post", "/api/v2/devices/d/telemetry", {"metrics": {"t": 1}}),
    ("patch", "/api/v2/devices/d", {"site_id": "s"}),
    ("delete", "/api/v2/channels/1", None),
    ("post", "/api/v2/deliveries/replay", {}),
    ("post", "/api/v2/alerts/1/acknowledge", None),
]


@pytest.mark.parametrize("method, path, body", VIEWER_WRITES, ids=[f"{m} {p}" for m, p, _ in VIEWER_WRITES])
def test_viewer_cannot_write(client, tenant, method, path, body):
    response = getattr(client, method)(path, json=body, headers=tenant.viewer)
    assert response.status_code == 403


def test_viewer_can_read(client, tenant):
    assert client.get("/api/v2/alerts", headers=tenant.viewer).status_code == 200
    assert client.get("/api/v2/deliveries", headers=tenant.viewer).status_code == 200


def test_rs256_tokens_from_an_identity_provider(tenant):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    private_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    settings = replace(Settings.from_env(), jwt_public_key=public_pem, jwt_issuer="https://idp.test", jwt_audience="pulse")
    good = jwt.encode(claims_for(tenant, iss="https://idp.test", aud="pulse"), private_pem, algorithm="RS256")
    assert decode_token(settings, good)["tenant_id"] == tenant.tenant_id
    wrong_audience = jwt.encode(claims_for(tenant, iss="https://idp.test", aud="other"), private_pem, algorithm="RS256")
    with pytest.raises(InvalidToken):
        decode_token(settings, wrong_audience)
    # Without a configured public key, an RS256 token is not accepted at all.
    with pytest.raises(InvalidToken):
        decode_token(Settings.from_env(), good)


def test_create_user_creates_tenant_and_user_and_prints_a_token(runner, client):
    result = runner.invoke(args=["create-user", "--tenant", "acme-cli", "--email", "Ops@Acme.test", "--role", "customer_viewer", "--password", "s3cret-pass"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    claims = jwt.decode(token, os.environ["SECRET_KEY"].encode(), algorithms=["HS256"])
    assert claims["tenant_id"] == "acme-cli" and claims["role"] == "customer_viewer" and claims["sub"] == "ops@acme.test"
    assert client.get("/api/v2/alerts", headers=bearer(token)).status_code == 200
    login = client.post("/api/v2/auth/token", json={"email": "ops@acme.test", "password": "s3cret-pass"})
    assert login.status_code == 200


def test_create_user_updates_an_existing_users_role_and_password(runner, client):
    runner.invoke(args=["create-user", "--tenant", "acme-upd", "--email", "lead@acme.test", "--role", "customer_viewer", "--password", "first-pass"])
    result = runner.invoke(args=["create-user", "--tenant", "acme-upd", "--email", "lead@acme.test", "--role", "customer_admin", "--password", "second-pass"])
    assert result.exit_code == 0, result.output
    assert client.post("/api/v2/auth/token", json={"email": "lead@acme.test", "password": "first-pass"}).status_code == 401
    login = client.post("/api/v2/auth/token", json={"email": "lead@acme.test", "password": "second-pass"})
    assert jwt.decode(login.get_json()["access_token"], options={"verify_signature": False})["role"] == "customer_admin"


def test_create_user_rejects_an_unknown_role(runner):
    result = runner.invoke(args=["create-user", "--tenant", "acme", "--email", "x@acme.test", "--role", "root", "--password", "p"])
    assert result.exit_code != 0


def test_verified_tokens_are_remembered_never_past_their_expiry(tenant):
    settings = Settings.from_env()
    tokens = VerifiedTokens(settings, ttl_seconds=60)
    short = signed(claims_for(tenant, exp=int(time.time()) + 2))
    first = tokens.claims(short)
    assert first["tenant_id"] == tenant.tenant_id
    # Remembered: the same string is answered with the claims verified the first time ...
    assert tokens.claims(short) is first
    time.sleep(2.2)
    # ... but never past its exp: then it is verified anew (and holds within the leeway).
    again = tokens.claims(short)
    assert again == first and again is not first
    expired = signed(claims_for(tenant, exp=int(time.time()) - 60))
    with pytest.raises(InvalidToken, match="expired"):
        tokens.claims(expired)


def test_a_forged_token_is_never_remembered(tenant):
    tokens = VerifiedTokens(Settings.from_env())
    genuine = signed(claims_for(tenant))
    forged = signed(claims_for(tenant), key="not-the-secret-key")
    assert tokens.claims(genuine)["sub"] == tenant.admin_email
    for _ in range(2):
        with pytest.raises(InvalidToken):
            tokens.claims(forged)
