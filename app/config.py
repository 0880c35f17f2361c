"""Settings: what Pulse reads from its environment (DESIGN §3), once, when a process starts.

`Environment` (pydantic-settings) reads and validates the variables under their public
names; `Settings.from_env()` turns them into the frozen value objects the rest of Pulse is
given (`Settings`, with the delivery policy grouped in `DeliverySettings`). Nothing reads the
environment at import time: `create_app()` and the Celery factory call `Settings.from_env()`,
and tests build settings of their own with `dataclasses.replace`.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The longest circuit-open period: a circuit whose probes keep failing waits this long at most.
CIRCUIT_OPEN_MAX_SECONDS = 600


class ConfigurationError(ValueError):
    """The environment does not describe a Pulse that can run; the message says what to set."""


def instance_dir() -> Path:
    """Where the embedded defaults live: the SQLite file, the secret key, the Redis socket."""
    path = Path(os.environ.get("PULSE_INSTANCE_DIR") or PROJECT_ROOT / "instance")
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


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(text: str) -> float:
    """Seconds in `30`, `30s`, `5m`, `2h`, `1d` or `250ms`; ValueError otherwise."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text.strip()!r} is not a duration such as 30s, 5m, 2h or 1d")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_retry_schedule(value: object) -> tuple[float, ...] | None:
    """`5m,30m,2h,12h,24h` as seconds; None when unset."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        delays = tuple(parse_duration(part) for part in value.split(","))
    else:
        delays = tuple(float(part) for part in value)  # type: ignore[union-attr]
    if not delays or any(delay <= 0 for delay in delays):
        raise ValueError("every delay of DELIVERY_RETRY_SCHEDULE must be above zero")
    return delays


def _flag(value: object) -> object:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]
RetrySchedule = Annotated[tuple[float, ...] | None, NoDecode, BeforeValidator(parse_retry_schedule)]


class Environment(BaseSettings):
    """The environment variables of DESIGN §3 (and Pulse's own `PULSE_*` tuning knobs), validated."""

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, extra="ignore", frozen=True)

    DATABASE_URL: str = "sqlite:///instance/pulse.db"
    MIGRATION_DATABASE_URL: str | None = None
    REDIS_URL: str | None = None
    CELERY_BROKER_URL: str | None = None
    SECRET_KEY: str | None = None
    JWT_PUBLIC_KEY: str | None = None
    JWT_ISSUER: str | None = None
    JWT_AUDIENCE: str | None = None
    JWT_JWKS_URL: str | None = None
    PULSE_TOKEN_TTL_SECONDS: int = Field(3600, ge=60)

    DELIVERY_MAX_ATTEMPTS: int = Field(5, ge=1, le=100)
    DELIVERY_BACKOFF_BASE_SECONDS: float = Field(30, gt=0)
    DELIVERY_BACKOFF_MAX_SECONDS: float = Field(7200, gt=0)
    DELIVERY_RETRY_SCHEDULE: RetrySchedule = None
    DELIVERY_TIMEOUT_SECONDS: float = Field(10, gt=0, le=300)
    DELIVERY_MAX_AGE_SECONDS: float = Field(86400, gt=0)
    DELIVERY_CONCURRENCY_PER_CHANNEL: int = Field(4, ge=1, le=1000)
    PULSE_TENANT_QUEUE_DEPTH: int = Field(32, ge=1, le=10000)
    PULSE_PREPARED_STATEMENTS: bool = True
    PULSE_ETA_RETRY_MAX_SECONDS: float = Field(300, ge=0, le=3600)
    CIRCUIT_FAILURE_THRESHOLD: int = Field(5, ge=1)
    CIRCUIT_OPEN_SECONDS: float = Field(30, gt=0, le=CIRCUIT_OPEN_MAX_SECONDS)
    TRUSTED_CA_DIR: str | None = None
    ALLOW_PRIVATE_DESTINATIONS: Flag = False
    PAGERDUTY_EVENTS_URL: str = "https://events.pagerduty.com/v2/enqueue"

    RATE_LIMIT_INGEST: str = "6000/minute"
    RATE_LIMIT_AUTH: str = "10/minute"
    TRUSTED_PROXY_HOPS: int = Field(0, ge=0, le=10)
    PULSE_PASSWORD_THREADS: int = Field(2, ge=1, le=64)

    HOST: str = "127.0.0.1"
    PORT: int = Field(8000, ge=1, le=65535)
    PUBLIC_URL: str | None = None
    WORKER_METRICS_PORT: int = Field(9808, ge=0, le=65535)
    WORKER_NICE: int = Field(5, ge=0, le=19)

    TELEMETRY_BACKEND: str = "sql"
    INFLUXDB_URL: str | None = None
    INFLUXDB_TOKEN: str | None = None
    INFLUXDB_ORG: str | None = None
    INFLUXDB_BUCKET: str | None = None
    WS_POLL_SECONDS: float = Field(5, gt=0)
    PULSE_WS_PING_SECONDS: float = Field(25, gt=0)
    PULSE_WS_OUTBOX_MESSAGES: int = Field(256, ge=1)
    PULSE_WS_WRITE_TIMEOUT_SECONDS: float = Field(10, gt=0)
    SWEEP_INTERVAL_SECONDS: float = Field(30, gt=0)
    PULSE_RETENTION_DAYS: int = Field(30, ge=1)
    PULSE_LOG_FORMAT: str = "json"

    @field_validator("RATE_LIMIT_INGEST", "RATE_LIMIT_AUTH")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        value = value.strip()
        if value.lower() == "off":
            return "off"
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError("must be a rate such as 10/minute or 100 per hour, or off") from None
        return value

    @field_validator("PULSE_LOG_FORMAT")
    @classmethod
    def _log_format(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ("json", "text"):
            raise ValueError("must be json or text")
        return value


def _secret_key(configured: str | None) -> str:
    """SECRET_KEY, or a key generated once into the instance directory (make run)."""
    if configured:
        return configured
    path = instance_dir() / "secret_key"
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process of the stack wrote it a moment ago
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


@dataclass(frozen=True)
class DeliverySettings:
    """The retry policy, limits and guards every delivery uses."""

    max_attempts: int = 5
    backoff_base_seconds: float = 30
    backoff_max_seconds: float = 7200
    # Explicit delays (seconds) instead of the doubling; one attempt more than delays listed.
    retry_schedule: tuple[float, ...] | None = None
    timeout_seconds: float = 10.0
    max_age_seconds: float = 86400
    concurrency_per_channel: int = 4
    # Messages of one tenant waiting in one queue at most; the rest wait in the database.
    tenant_queue_depth: int = 32
    # A retry due at most this far ahead goes out as a Celery ETA message; a later one waits
    # in the database and the beat sends it when due.
    eta_retry_max_seconds: float = 300
    circuit_failure_threshold: int = 5
    circuit_open_seconds: float = 30
    trusted_ca_dir: str | None = None
    allow_private_destinations: bool = False
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"

    @property
    def attempts_allowed(self) -> int:
        """Attempts before a delivery is dead-lettered: the schedule's length + 1 when one is set."""
        return len(self.retry_schedule) + 1 if self.retry_schedule else self.max_attempts

    @property
    def longest_delay_seconds(self) -> float:
        """The longest wait between two attempts the policy can ask for."""
        return max(self.retry_schedule) if self.retry_schedule else self.backoff_max_seconds


@dataclass(frozen=True)
class Settings:
    """Everything Pulse reads from its environment (DESIGN §3)."""

    database_url: str
    redis_url: str
    broker_url: str
    secret_key: str
    # Alembic connects as the schema's owner; the processes connect with `database_url`, as
    # a role that row-level security binds (see README, Deploying).
    migration_database_url: str = ""
    # Whether the delivery path's hot statements are prepared once per connection (app.db).
    prepared_statements: bool = True
    jwt_public_key: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # The identity provider's JWKS document, when its keys are fetched rather than configured.
    jwt_jwks_url: str | None = None
    token_ttl_seconds: int = 3600
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    rate_limit_ingest: str = "6000/minute"
    rate_limit_auth: str = "10/minute"
    # X-Forwarded-For entries added by proxies Pulse trusts; 0: the peer address is the client.
    trusted_proxy_hops: int = 0
    # Native threads that check passwords in the web process (app.passwords).
    password_threads: int = 2
    public_url: str = "http://127.0.0.1:8000"
    worker_metrics_port: int = 9808
    # How far a worker lowers its CPU priority below the web's (app.cpu_priority).
    worker_nice: int = 5
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
    sweep_interval_seconds: float = 30
    retention_days: int = 30
    log_format: str = "json"

    @classmethod
    def from_env(cls) -> "Settings":
        """Read the environment, falling back to the embedded defaults of `make run`.

        Raises ConfigurationError naming every variable that is wrong.
        """
        try:
            env = Environment()
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
            raise ConfigurationError(f"invalid configuration: {problems}") from None
        for key_source in ("JWT_PUBLIC_KEY", "JWT_JWKS_URL"):
            if getattr(env, key_source) and not (env.JWT_ISSUER and env.JWT_AUDIENCE):
                # An identity provider's tokens are only as narrow as the claims checked: without
                # both, a token it issued for another application would be accepted here.
                missing = " and ".join(name for name in ("JWT_ISSUER", "JWT_AUDIENCE") if not getattr(env, name))
                raise ConfigurationError(f"invalid configuration: {key_source} is set, so {missing} must be set too")
        redis_url = env.REDIS_URL or "unix://" + str(embedded_redis_socket())
        return cls(
            database_url=normalise_database_url(env.DATABASE_URL),
            migration_database_url=normalise_database_url(env.MIGRATION_DATABASE_URL or env.DATABASE_URL),
            prepared_statements=env.PULSE_PREPARED_STATEMENTS,
            redis_url=redis_url,
            broker_url=broker_url_for_redis(env.CELERY_BROKER_URL or redis_url),
            secret_key=_secret_key(env.SECRET_KEY),
            jwt_public_key=env.JWT_PUBLIC_KEY,
            jwt_issuer=env.JWT_ISSUER,
            jwt_audience=env.JWT_AUDIENCE,
            jwt_jwks_url=env.JWT_JWKS_URL,
            token_ttl_seconds=env.PULSE_TOKEN_TTL_SECONDS,
            delivery=DeliverySettings(
                max_attempts=env.DELIVERY_MAX_ATTEMPTS,
                backoff_base_seconds=env.DELIVERY_BACKOFF_BASE_SECONDS,
                backoff_max_seconds=env.DELIVERY_BACKOFF_MAX_SECONDS,
                retry_schedule=env.DELIVERY_RETRY_SCHEDULE,
                timeout_seconds=env.DELIVERY_TIMEOUT_SECONDS,
                max_age_seconds=env.DELIVERY_MAX_AGE_SECONDS,
                concurrency_per_channel=env.DELIVERY_CONCURRENCY_PER_CHANNEL,
                tenant_queue_depth=env.PULSE_TENANT_QUEUE_DEPTH,
                eta_retry_max_seconds=env.PULSE_ETA_RETRY_MAX_SECONDS,
                circuit_failure_threshold=env.CIRCUIT_FAILURE_THRESHOLD,
                circuit_open_seconds=env.CIRCUIT_OPEN_SECONDS,
                trusted_ca_dir=env.TRUSTED_CA_DIR,
                allow_private_destinations=env.ALLOW_PRIVATE_DESTINATIONS,
                pagerduty_events_url=env.PAGERDUTY_EVENTS_URL,
            ),
            rate_limit_ingest=env.RATE_LIMIT_INGEST,
            rate_limit_auth=env.RATE_LIMIT_AUTH,
            trusted_proxy_hops=env.TRUSTED_PROXY_HOPS,
            password_threads=env.PULSE_PASSWORD_THREADS,
            public_url=(env.PUBLIC_URL or f"http://{env.HOST}:{env.PORT}").rstrip("/"),
            worker_metrics_port=env.WORKER_METRICS_PORT,
            worker_nice=env.WORKER_NICE,
            telemetry_backend=env.TELEMETRY_BACKEND,
            influxdb_url=env.INFLUXDB_URL,
            influxdb_token=env.INFLUXDB_TOKEN,
            influxdb_org=env.INFLUXDB_ORG,
            influxdb_bucket=env.INFLUXDB_BUCKET,
            ws_poll_seconds=env.WS_POLL_SECONDS,
            ws_ping_seconds=env.PULSE_WS_PING_SECONDS,
            ws_outbox_messages=env.PULSE_WS_OUTBOX_MESSAGES,
            ws_write_timeout_seconds=env.PULSE_WS_WRITE_TIMEOUT_SECONDS,
            sweep_interval_seconds=env.SWEEP_INTERVAL_SECONDS,
            retention_days=env.PULSE_RETENTION_DAYS,
            log_format=env.PULSE_LOG_FORMAT,
        )
