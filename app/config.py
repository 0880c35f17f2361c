"""Settings read from the environment once, when the application or worker starts.

Nothing reads the environment at import time: `Settings.from_env()` is called by
`create_app()` and by the Celery application, so tests can build settings of their own.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def instance_dir() -> Path:
    """Where the embedded defaults live: the SQLite file, the secret key, the Redis socket."""
    path = Path(os.environ.get("PULSE_INSTANCE_DIR", PROJECT_ROOT / "instance"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def embedded_redis_socket() -> Path:
    """The Unix socket of the embedded Redis that `make run` starts."""
    return instance_dir() / "redis.sock"


def normalise_database_url(url: str) -> str:
    """Map the spellings users give to the driver Pulse ships (psycopg2)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        # A relative SQLite path is relative to the project, not to the caller's directory.
        relative = url[len("sqlite:///"):]
        if relative and relative != ":memory:":
            return "sqlite:///" + str(PROJECT_ROOT / relative)
    return url


def broker_url_for_redis(url: str) -> str:
    """kombu spells a Unix-socket Redis `redis+socket://`; redis-py spells it `unix://`."""
    if url.startswith("unix://"):
        return "redis+socket://" + url[len("unix://"):]
    return url


def _secret_key() -> str:
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    path = instance_dir() / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


@dataclass(frozen=True)
class DeliverySettings:
    """The retry policy and network limits every delivery uses."""

    max_attempts: int = 5
    backoff_base_seconds: int = 30
    backoff_max_seconds: int = 7200
    timeout_seconds: float = 10.0
    allow_private_destinations: bool = False
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"


@dataclass(frozen=True)
class Settings:
    """Everything Pulse reads from its environment (DESIGN §3)."""

    database_url: str
    redis_url: str
    broker_url: str
    secret_key: str
    jwt_public_key: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    token_ttl_seconds: int = 3600
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    telemetry_backend: str = "sql"
    influxdb_url: str | None = None
    influxdb_token: str | None = None
    influxdb_org: str | None = None
    influxdb_bucket: str | None = None
    ws_poll_seconds: float = 5.0
    # The live feed's connection upkeep: ping interval (a client that misses a pong by the
    # next ping is dropped), messages held for a slow client before it is dropped, and how
    # long one write may wait for a client that stopped reading.
    ws_ping_seconds: float = 25.0
    ws_outbox_messages: int = 256
    ws_write_timeout_seconds: float = 10.0
    sweep_interval_seconds: int = 30
    retention_days: int = 30

    @classmethod
    def from_env(cls) -> "Settings":
        """Read the environment, falling back to the embedded defaults of `make run`."""
        embedded = "unix://" + str(embedded_redis_socket())
        redis_url = os.environ.get("REDIS_URL") or embedded
        broker_url = broker_url_for_redis(os.environ.get("CELERY_BROKER_URL") or redis_url)
        return cls(
            database_url=normalise_database_url(
                os.environ.get("DATABASE_URL") or "sqlite:///instance/pulse.db"
            ),
            redis_url=redis_url,
            broker_url=broker_url,
            secret_key=_secret_key(),
            jwt_public_key=os.environ.get("JWT_PUBLIC_KEY") or None,
            jwt_issuer=os.environ.get("JWT_ISSUER") or None,
            jwt_audience=os.environ.get("JWT_AUDIENCE") or None,
            token_ttl_seconds=_int("PULSE_TOKEN_TTL_SECONDS", 3600),
            delivery=DeliverySettings(
                max_attempts=_int("DELIVERY_MAX_ATTEMPTS", 5),
                backoff_base_seconds=_int("DELIVERY_BACKOFF_BASE_SECONDS", 30),
                backoff_max_seconds=_int("DELIVERY_BACKOFF_MAX_SECONDS", 7200),
                timeout_seconds=_float("DELIVERY_TIMEOUT_SECONDS", 10.0),
                allow_private_destinations=os.environ.get("ALLOW_PRIVATE_DESTINATIONS", "0")
                in ("1", "true", "yes"),
                pagerduty_events_url=os.environ.get("PAGERDUTY_EVENTS_URL")
                or "https://events.pagerduty.com/v2/enqueue",
            ),
            telemetry_backend=os.environ.get("TELEMETRY_BACKEND", "sql"),
            influxdb_url=os.environ.get("INFLUXDB_URL") or None,
            influxdb_token=os.environ.get("INFLUXDB_TOKEN") or None,
            influxdb_org=os.environ.get("INFLUXDB_ORG") or None,
            influxdb_bucket=os.environ.get("INFLUXDB_BUCKET") or None,
            ws_poll_seconds=_float("WS_POLL_SECONDS", 5.0),
            ws_ping_seconds=_float("PULSE_WS_PING_SECONDS", 25.0),
            ws_outbox_messages=_int("PULSE_WS_OUTBOX_MESSAGES", 256),
            ws_write_timeout_seconds=_float("PULSE_WS_WRITE_TIMEOUT_SECONDS", 10.0),
            sweep_interval_seconds=_int("SWEEP_INTERVAL_SECONDS", 30),
            retention_days=_int("PULSE_RETENTION_DAYS", 30),
        )
