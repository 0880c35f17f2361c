"""One Alembic history builds the schema on an empty PostgreSQL and an empty SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.models import TENANT_TABLES, Base
from tests.conftest import PG_ADMIN_URL, _pg_url
from tests.support import ROOT

TABLES = {"tenants", *TENANT_TABLES}


def alembic(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, "MIGRATION_DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=True,
    )


def assert_schema_matches_models(url: str) -> None:
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as connection:
        tables = set(sqlalchemy.inspect(connection).get_table_names())
        assert TABLES <= tables
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"


def test_empty_sqlite_upgrades_to_head_and_back(tmp_path):
    url = f"sqlite:///{tmp_path / 'pulse.db'}"
    alembic(url, "upgrade", "head")
    assert_schema_matches_models(url)
    alembic(url, "downgrade", "base")
    alembic(url, "upgrade", "head")


def test_empty_postgresql_upgrades_to_head_and_back():
    name = "pulse_migration_" + uuid.uuid4().hex[:8]
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = _pg_url(name)
        alembic(url, "upgrade", "head")
        assert_schema_matches_models(url)
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as connection:
            secured = connection.exec_driver_sql(
                "SELECT relname FROM pg_class WHERE relrowsecurity AND relforcerowsecurity AND relkind = 'r'"
            ).scalars().all()
        engine.dispose()
        assert TABLES - {"tenants"} <= set(secured)
        alembic(url, "downgrade", "base")
        alembic(url, "upgrade", "head")
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
