"""The database engine and sessions, scoped to one tenant for PostgreSQL's row-level security."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Iterator

from sqlalchemy import Interval, create_engine, event, func, literal, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

# The value of `app.tenant_id` for Pulse's own cross-tenant work (the sweeper, login).
SYSTEM_SCOPE = "*"


def make_engine(url: str) -> Engine:
    """An engine tuned for the backend: pooled PostgreSQL, or a SQLite file shared by processes."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            # WAL lets the web process read while a worker writes; foreign keys are off by default.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Database:
    """One engine and its session factory; `session(tenant_id)` opens a tenant-scoped unit of work."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        if self.is_postgres:
            event.listen(self._factory, "after_begin", _set_tenant_scope)

    @contextmanager
    def session(self, tenant_id: str | None = SYSTEM_SCOPE) -> Iterator[Session]:
        """A session committed on success and rolled back on error, bound to one tenant."""
        session = self._factory()
        session.info["tenant_id"] = tenant_id or SYSTEM_SCOPE
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Drop pooled connections (after a fork, a worker must not share its parent's)."""
        self.engine.dispose()


def _set_tenant_scope(session: Session, _transaction, connection) -> None:
    # Local to the transaction: a pooled connection never carries one tenant's scope to another.
    connection.execute(
        text("SELECT set_config('app.tenant_id', :tenant, true)"),
        {"tenant": session.info.get("tenant_id", SYSTEM_SCOPE)},
    )


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def insert_for(session: Session):
    """The dialect's INSERT construct, which has ON CONFLICT (PostgreSQL and SQLite alike)."""
    return (postgresql if is_postgres(session) else sqlite).insert


def db_now(session: Session) -> ColumnElement:
    """The database's clock, for leases and due times: `now()` on PostgreSQL.

    SQLite is a file on the machine that runs Pulse: there the process's clock is the
    database's.
    """
    from app.models import UtcDateTime

    if is_postgres(session):
        return func.now()
    return literal(datetime.now(timezone.utc), UtcDateTime)


def db_after(session: Session, seconds: float) -> ColumnElement:
    """`seconds` from now on the database's clock."""
    from app.models import UtcDateTime

    if is_postgres(session):
        return func.now() + literal(timedelta(seconds=seconds), Interval())
    return literal(datetime.now(timezone.utc) + timedelta(seconds=seconds), UtcDateTime)
