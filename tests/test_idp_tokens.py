"""Tokens from an external identity provider (DESIGN §6): issuer and audience are required, the
algorithm is pinned per key, and a process with a public key but no issuer or audience does not start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.auth import InvalidToken, decode_token
from app.config import ConfigurationError, Settings
from tests.support import ROOT, settings_with

ISSUER = "https://idp.example.test/"
AUDIENCE = "pulse-api"


@pytest.fixture(scope="module")
def keys():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    private_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return private_pem, public_pem


@pytest.fixture
def idp_app(keys):
    from app import create_app

    _, public_pem = keys
    application = create_app(settings_with({"JWT_PUBLIC_KEY": public_pem, "JWT_ISSUER": ISSUER, "JWT_AUDIENCE": AUDIENCE}), test_config={"TESTING": True})
    yield application
    application.extensions["pulse"].db.dispose()


def claims_for(tenant, **overrides) -> dict:
    now = int(time.time())
    claims = {"sub": "idp-user-17", "tenant_id": tenant.tenant_id, "role": "customer_viewer", "iat": now, "exp": now + 600, "iss": ISSUER, "aud": AUDIENCE}
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def rs256(keys, claims: dict) -> str:
    return jwt.encode(claims, keys[0], algorithm="RS256")


def status_with(idp_app, token: str) -> int:
    return idp_app.test_client().get("/api/v2/alerts", headers={"Authorization": f"Bearer {token}"}).status_code


def test_a_token_with_the_configured_issuer_and_audience_is_accepted(idp_app, keys, tenant):
    assert status_with(idp_app, rs256(keys, claims_for(tenant))) == 200


CASES = [
    ("no iss", {"iss": None}),
    ("no aud", {"aud": None}),
    ("wrong iss", {"iss": "https://evil.example.test/"}),
    ("wrong aud", {"aud": "another-app"}),
    ("no exp", {"exp": None}),
    ("no iat", {"iat": None}),
    ("no sub", {"sub": None}),
]


@pytest.mark.parametrize("case, overrides", CASES, ids=[c for c, _ in CASES])
def test_an_rs256_token_without_matching_iss_and_aud_is_401(idp_app, keys, tenant, case, overrides):
    assert status_with(idp_app, rs256(keys, claims_for(tenant, **overrides))) == 401


def test_an_hs256_token_keyed_with_the_public_keys_text_is_refused(idp_app, keys, tenant):
    # The classic algorithm confusion: "sign" HS256 with the public key everybody may know.
    forged = jwt.api_jws.PyJWS()
    forged._algorithms["HS256"].prepare_key = lambda key: key  # PyJWT itself refuses a PEM as an HMAC key
    token = forged.encode(json.dumps(claims_for(tenant)).encode(), keys[1].encode(), algorithm="HS256")
    assert status_with(idp_app, token) == 401
    with pytest.raises(InvalidToken):
        decode_token(idp_app.extensions["pulse"].settings, token)


def test_an_rs256_token_signed_by_another_key_is_401(idp_app, tenant):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = stranger.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    assert status_with(idp_app, jwt.encode(claims_for(tenant), pem, algorithm="RS256")) == 401


def test_pulses_own_hs256_tokens_still_work_beside_the_identity_provider(idp_app, tenant):
    assert status_with(idp_app, tenant.admin_token) == 200


def test_without_a_public_key_an_rs256_token_is_refused(keys, tenant):
    with pytest.raises(InvalidToken):
        decode_token(Settings.from_env(), rs256(keys, claims_for(tenant)))


@pytest.mark.parametrize(
    "env, missing",
    [
        ({}, "JWT_ISSUER and JWT_AUDIENCE"),
        ({"JWT_ISSUER": ISSUER}, "JWT_AUDIENCE"),
        ({"JWT_AUDIENCE": AUDIENCE}, "JWT_ISSUER"),
    ],
)
def test_a_public_key_without_issuer_or_audience_is_a_configuration_error(keys, env, missing):
    with pytest.raises(ConfigurationError, match=f"JWT_PUBLIC_KEY is set, so {missing} must be set"):
        settings_with({"JWT_PUBLIC_KEY": keys[1], **env})


def test_a_process_with_a_public_key_and_no_issuer_refuses_to_start(keys):
    env = {**os.environ, "JWT_PUBLIC_KEY": keys[1]}
    env.pop("JWT_ISSUER", None)
    env.pop("JWT_AUDIENCE", None)
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "create-user", "--tenant", "never-made", "--email", "x@never.test", "--role", "customer_admin", "--password", "pw-123456"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "JWT_ISSUER and JWT_AUDIENCE must be set" in result.stderr
    assert "BEGIN PUBLIC KEY" not in result.stderr + result.stdout


def test_the_settings_keep_issuer_and_audience(keys):
    settings = settings_with({"JWT_PUBLIC_KEY": keys[1], "JWT_ISSUER": ISSUER, "JWT_AUDIENCE": AUDIENCE})
    assert (settings.jwt_issuer, settings.jwt_audience) == (ISSUER, AUDIENCE)


# Keys from the identity provider's JWKS document -------------------------------------------

@pytest.fixture
def jwks_app(keys, http_peer):
    from app import create_app

    public_key = serialization.load_pem_public_key(keys[1].encode())
    jwk = {**jwt.algorithms.RSAAlgorithm.to_jwk(public_key, as_dict=True), "kid": "key-1", "use": "sig", "alg": "RS256"}
    http_peer.expect_request("/.well-known/jwks.json").respond_with_json({"keys": [jwk]})
    env = {"JWT_JWKS_URL": http_peer.url_for("/.well-known/jwks.json"), "JWT_ISSUER": ISSUER, "JWT_AUDIENCE": AUDIENCE}
    application = create_app(settings_with(env), test_config={"TESTING": True})
    yield application
    application.extensions["pulse"].db.dispose()


def with_kid(keys, claims: dict, kid: str = "key-1") -> str:
    return jwt.encode(claims, keys[0], algorithm="RS256", headers={"kid": kid})


def test_a_token_signed_by_a_key_of_the_jwks_document_is_accepted(jwks_app, keys, tenant):
    assert status_with(jwks_app, with_kid(keys, claims_for(tenant))) == 200


def test_jwks_tokens_need_the_issuer_and_audience_too(jwks_app, keys, tenant):
    assert status_with(jwks_app, with_kid(keys, claims_for(tenant, aud="another-app"))) == 401
    assert status_with(jwks_app, with_kid(keys, claims_for(tenant, iss=None))) == 401


def test_a_kid_the_jwks_document_does_not_have_is_401(jwks_app, keys, tenant):
    assert status_with(jwks_app, with_kid(keys, claims_for(tenant), kid="unknown-key")) == 401


def test_a_jwks_url_without_issuer_and_audience_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="JWT_JWKS_URL is set, so JWT_ISSUER and JWT_AUDIENCE must be set"):
        settings_with({"JWT_JWKS_URL": "https://idp.example.test/jwks.json"})
