"""Passwords, JWTs, the roles of the API, and who may open the live feed.

HS256 tokens are issued by Pulse and signed with SECRET_KEY's UTF-8 bytes; RS256 tokens from
an external identity provider are accepted when JWT_PUBLIC_KEY is set (or JWT_JWKS_URL, whose
key set is fetched and cached, the key chosen by the token's `kid`), and must carry the
configured JWT_ISSUER and JWT_AUDIENCE (the settings refuse a public key without both). The
algorithm is pinned per key: an HS256 token is only ever checked against SECRET_KEY, so one
"signed" with the public key's text is forged. `exp`, `iat` and `sub` are required, `exp`
has at most 30 seconds of leeway, and `tenant_id` must be a tenant name (app.tenants).
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import jwt
from werkzeug.security import generate_password_hash

from app.config import Settings
from app.tenants import TENANT_NAME_RULE, is_tenant_name

ROLES = ("customer_admin", "customer_viewer")
# Close codes of the live feed's handshake (DESIGN §8).
CLOSE_UNAUTHENTICATED = 4001
CLOSE_FORBIDDEN = 4003
# Checked by PyJWT; `tenant_id` and `role` are checked after the signature (see MissingScope).
REQUIRED_CLAIMS = ["exp", "iat", "sub"]
# An identity provider's tokens must also say who issued them and for whom.
REQUIRED_IDP_CLAIMS = [*REQUIRED_CLAIMS, "iss", "aud"]
LEEWAY_SECONDS = 30


class InvalidToken(Exception):
    """The token is missing, malformed, forged, expired or lacks a required claim."""


class MissingScope(InvalidToken):
    """A genuine, current token that names no tenant or no role.

    The REST API answers it like any invalid token (401); the live feed closes with 4003.
    """


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's subject, tenant and role."""

    subject: str
    tenant_id: str
    role: str

    @property
    def can_write(self) -> bool:
        return self.role == "customer_admin"


def hash_password(password: str) -> str:
    """A salted scrypt hash (werkzeug's default), made inline: for the CLI, not the web process
    (which uses app.passwords.PasswordHasher)."""
    return generate_password_hash(password)


def issue_token(settings: Settings, subject: str, tenant_id: str, role: str, ttl: int | None = None) -> tuple[str, int]:
    """A signed HS256 token and its lifetime in seconds."""
    ttl = ttl or settings.token_ttl_seconds
    now = int(time.time())
    claims = {"sub": subject, "tenant_id": tenant_id, "role": role, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, settings.secret_key.encode("utf-8"), algorithm="HS256"), ttl


def decode_token(settings: Settings, token: str) -> dict:
    """The verified claims of a token; InvalidToken otherwise."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidToken("malformed token") from None
    options = {"require": REQUIRED_CLAIMS}
    try:
        if header.get("alg") == "RS256" and (settings.jwt_public_key or settings.jwt_jwks_url):
            claims = jwt.decode(
                token,
                settings.jwt_public_key or _jwks_client(settings.jwt_jwks_url).get_signing_key_from_jwt(token).key,
                algorithms=["RS256"],
                options={"require": REQUIRED_IDP_CLAIMS},
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
                leeway=LEEWAY_SECONDS,
            )
        else:
            claims = jwt.decode(
                token,
                settings.secret_key.encode("utf-8"),
                algorithms=["HS256"],
                options=options,
                leeway=LEEWAY_SECONDS,
            )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token expired") from None
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"invalid token: {exc}") from None
    if not _non_empty_string(claims.get("sub")):
        raise InvalidToken("invalid token: claim 'sub' must be a non-empty string")
    for claim in ("tenant_id", "role"):
        if not _non_empty_string(claims.get(claim)):
            raise MissingScope(f"invalid token: claim {claim!r} must be a non-empty string")
    if not is_tenant_name(claims["tenant_id"]):
        raise InvalidToken(f"invalid token: claim 'tenant_id' is not a tenant name ({TENANT_NAME_RULE})")
    return claims


class VerifiedTokens:
    """Tokens this process has verified, with their claims, remembered for a short while.

    Checking a token's signature and claims cost about a tenth of an API request's CPU, and a
    client sends the same token with every request. A token verified within the last
    `ttl_seconds` is answered from memory, never past its own `exp`; only verified tokens are
    kept, so a forged or expired one is checked in full every time.
    """

    def __init__(self, settings: Settings, ttl_seconds: float = 60.0, size: int = 4096):
        self._settings = settings
        self._ttl = ttl_seconds
        self._size = size
        self._kept: OrderedDict[str, tuple[float, dict]] = OrderedDict()
        self._lock = threading.Lock()

    def claims(self, token: str) -> dict:
        """The verified claims of `token` (see `decode_token`); InvalidToken otherwise."""
        now = time.time()
        with self._lock:
            kept = self._kept.get(token)
            if kept is not None and kept[0] > now:
                self._kept.move_to_end(token)
                return kept[1]
        claims = decode_token(self._settings, token)
        until = min(now + self._ttl, float(claims["exp"]))
        with self._lock:
            self._kept[token] = (until, claims)
            self._kept.move_to_end(token)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return claims


@functools.lru_cache(maxsize=4)
def _jwks_client(url: str) -> jwt.PyJWKClient:
    """One client per JWKS URL and process: it caches the key set (5 minutes) between tokens."""
    return jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=300, timeout=5)


def _non_empty_string(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def principal_from_claims(claims: dict) -> Principal:
    return Principal(subject=claims["sub"], tenant_id=claims["tenant_id"], role=claims["role"])


class Refused(Exception):
    """The live feed refuses a connection: it is closed with `code`."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def authorize(settings: Settings, token: str | None, tenant_exists: Callable[[str], bool]) -> Principal:
    """The caller named by the `?token=` of a feed connection; Refused(4001 or 4003) otherwise.

    4001: no token, or one that is malformed, forged, expired or names a tenant that does not
    exist (`tenant_exists` says). 4003: a genuine token whose
    role is not a customer role, or that names no tenant (the REST API answers such a token
    with 401; the feed's contract tells the two apart).
    """
    if not token:
        raise Refused(CLOSE_UNAUTHENTICATED, "a token is required: connect to /api/v2/ws?token=<JWT>")
    try:
        claims = decode_token(settings, token)
    except MissingScope:
        raise Refused(CLOSE_FORBIDDEN, "the token names no tenant or no role") from None
    except InvalidToken as exc:
        raise Refused(CLOSE_UNAUTHENTICATED, str(exc)) from None
    if claims["role"] not in ROLES:
        raise Refused(CLOSE_FORBIDDEN, f"role {claims['role']!r} has no access to the live feed")
    if not tenant_exists(claims["tenant_id"]):
        raise Refused(CLOSE_UNAUTHENTICATED, "the token names a tenant that does not exist")
    return principal_from_claims(claims)
