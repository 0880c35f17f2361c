"""The application's own PostgreSQL role, as a deployment makes it (README, Deploying).

The migrations run as the owner of the schema; the web process and the workers connect as a
role that is neither superuser, nor owner, nor BYPASSRLS, so row-level security holds for
every query they make. `make test` makes it here, on any machine: roles belong to the whole
PostgreSQL cluster, so creating it is idempotent and safe against a run alongside.
"""

from __future__ import annotations

import sqlalchemy

APP_ROLE = "pulse_test_app"


def ensure_app_role(admin: sqlalchemy.Engine, role: str = APP_ROLE) -> None:
    """Create `role` (LOGIN, no superuser, no BYPASSRLS) unless it exists; make sure of its attributes."""
    with admin.connect() as connection:
        connection.exec_driver_sql(
            f"DO $$ BEGIN CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )
        connection.exec_driver_sql(f"ALTER ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE")


def grant_app_role(owner: sqlalchemy.Engine, role: str = APP_ROLE) -> None:
    """Give `role` the data privileges of the migrated schema (and of tables made later by its owner)."""
    with owner.begin() as connection:
        connection.exec_driver_sql(f"GRANT USAGE ON SCHEMA public TO {role}")
        connection.exec_driver_sql(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        connection.exec_driver_sql(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role}")
        connection.exec_driver_sql(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}")
        connection.exec_driver_sql(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}")


def as_role(url: str, role: str = APP_ROLE) -> str:
    """`url` with `role` as its user (the test cluster trusts 127.0.0.1)."""
    scheme, rest = url.split("://", 1)
    _, _, host_and_db = rest.rpartition("@")
    return f"{scheme}://{role}@{host_and_db}"
