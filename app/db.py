"""The database engine and sessions, scoped to one tenant for PostgreSQL's row-level security."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timezone
from typing import Iterator

from sqlalchemy import DateTime, create_engine, event, literal, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator

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


class UtcDateTime(TypeDecorator):
    """A timestamp that always comes back timezone-aware UTC, SQLite included."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value

    def process_result_value(self, value, dialect):
        if value is not None:
            value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        return value


class DbNow(ColumnElement):
    """The database's clock, for leases and due times: `now()` on PostgreSQL.

    SQLite is a file on the machine that runs Pulse: there its own clock ('now', UTC) is the
    machine's, rendered in the text form SQLAlchemy stores times in, so the two compare.
    Built once into a statement, it is evaluated by the database at every execution.
    """

    type = UtcDateTime()
    inherit_cache = True


class DbAfter(ColumnElement):
    """`seconds` (a SQL expression, usually a bound parameter) from now on the database's clock."""

    type = UtcDateTime()
    inherit_cache = True

    def __init__(self, seconds):
        self.seconds = seconds if isinstance(seconds, ColumnElement) else literal(float(seconds))

    def get_children(self, **_kwargs):
        return (self.seconds,)

    _traverse_internals = [("seconds", InternalTraversal.dp_clauseelement)]


# SQLite keeps times as 'YYYY-MM-DD HH:MM:SS.ffffff' text; its clock has milliseconds.
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'"


@compiles(DbNow)
def _now_default(element, compiler, **kw):
    return "now()"


@compiles(DbNow, "sqlite")
def _now_sqlite(element, compiler, **kw):
    return _SQLITE_NOW


@compiles(DbAfter)
def _after_default(element, compiler, **kw):
    return f"(now() + make_interval(secs => {compiler.process(element.seconds, **kw)}))"


@compiles(DbAfter, "sqlite")
def _after_sqlite(element, compiler, **kw):
    seconds = compiler.process(element.seconds, **kw)
    return f"(strftime('%Y-%m-%d %H:%M:%f', 'now', printf('%+.6f seconds', {seconds})) || '000')"


def db_now(session: Session | None = None) -> ColumnElement:
    """The database's clock (see DbNow)."""
    return DbNow()


def db_after(session: Session | None, seconds: float | ColumnElement) -> ColumnElement:
    """`seconds` from now on the database's clock (see DbAfter)."""
    return DbAfter(seconds)
