"""The database engine and sessions, scoped to one tenant for PostgreSQL's row-level security."""

from __future__ import annotations

import logging
import os
import re
import time
from collections import namedtuple
from contextlib import AbstractContextManager, contextmanager
from datetime import timezone
from typing import Any, Iterator

from sqlalchemy import DateTime, bindparam, create_engine, event, func, literal, make_url, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator

from app.sqlite_groups import WriteGroups
from app.sqlite_writer import connection_factory
from app.tenants import is_tenant_name

log = logging.getLogger(__name__)

# The value of `app.tenant_id` for Pulse's own cross-tenant work (the sweeper, login). No
# tenant is named `*` (app.tenants), and only `Database.system_scope` sets it.
SYSTEM_SCOPE = "*"


def tenant_scope(tenant_id: str) -> str:
    """`tenant_id` as a transaction's scope; ValueError for anything that is not a tenant name.

    There is no default and no fallback to the wildcard: a caller that lost its tenant fails
    here instead of running across every tenant's rows.
    """
    if not is_tenant_name(tenant_id):
        raise ValueError(
            f"{tenant_id!r} is not a tenant: cross-tenant work names itself with Database.system_scope(task)"
        )
    return tenant_id


def system_scope_for(task: str) -> str:
    """The wildcard scope, for the cross-tenant task `task` (`sweeper`, `login`, ...).

    The name is required so that every use of the wildcard says, where it is written, which of
    Pulse's own tasks it serves (and can be found by searching for `system_scope(`).
    """
    if not (isinstance(task, str) and task.strip()):
        raise ValueError("a system scope must name the task it serves")
    return SYSTEM_SCOPE


def sqlite_file(url: str) -> str | None:
    """The path of the SQLite file `url` names, or None (not SQLite, in memory, a `file:` URI)."""
    if not url.startswith("sqlite"):
        return None
    path = make_url(url).database
    if path and path != ":memory:" and not path.startswith("file:"):
        return os.path.abspath(path)
    return None


def make_engine(url: str) -> Engine:
    """An engine tuned for the backend: pooled PostgreSQL, or a SQLite file shared by processes."""
    if url.startswith("sqlite"):
        connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": 30}
        path = sqlite_file(url)
        if path:
            # Writers take turns instead of polling in SQLite's busy handler (app.sqlite_writer).
            connect_args["factory"] = connection_factory(path)
        engine = create_engine(url, connect_args=connect_args)
        _plain_savepoints(engine)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            # WAL lets the web process read while a worker writes; foreign keys are off by default.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # Times come back in UTC whatever the server's TimeZone: statements run on the driver
    # (Database.work) read them without SQLAlchemy's result processing.
    engine = create_engine(url, pool_size=10, max_overflow=20, connect_args={"options": "-c timezone=UTC"})
    _ping_when_idle(engine)
    return engine


def _plain_savepoints(engine: Engine) -> None:
    """Say SAVEPOINT, RELEASE and ROLLBACK TO as plain SQL on this SQLite engine.

    Every unit of the group commit (app.sqlite_groups) is a savepoint, two or three per
    delivery under `make run`, and SQLAlchemy compiles each of these statements anew: 39 µs a
    SAVEPOINT and RELEASE pair against 9 µs as plain SQL, measured on a bare connection. The
    units run one at a time, so the difference is paid inside the group's turn: `make run`
    went from 271 to 301 deliveries/s (bench/dispatch.py, 500 x 3). The dialect has no
    setting for it; the engine's own dialect instance gets the three methods.
    """
    dialect = engine.dialect
    quote = dialect.identifier_preparer.quote

    def plain(verb: str):
        def say(connection, name: str) -> None:
            connection.exec_driver_sql(f"{verb} {quote(name)}")

        return say

    dialect.do_savepoint = plain("SAVEPOINT")
    dialect.do_release_savepoint = plain("RELEASE SAVEPOINT")
    dialect.do_rollback_to_savepoint = plain("ROLLBACK TO SAVEPOINT")


# A pooled connection idle for longer than this is pinged before it is used again.
PING_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only if it sat idle for a while.

    SQLAlchemy's `pool_pre_ping` pings on every checkout: a round trip per API request and two
    per delivery (4% of an authenticated GET's CPU in the web process, profiled). A connection in steady use was in use a
    moment ago; one that sat idle (across a database restart, say) is pinged, and replaced
    if dead. One that dies while in use fails that unit of work, which every caller handles
    (the API answers 503, a delivery is sent again).
    """
    dbapi_error = engine.dialect.loaded_dbapi.Error

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_IDLE_SECONDS:
            return
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi_connection.rollback()  # the ping's transaction, not the caller's
        except dbapi_error as error:
            # The pool discards this connection and checks out another.
            raise DisconnectionError(str(error)) from error


class Database:
    """One engine and its session factory; `session(tenant_id)` opens a tenant-scoped unit of work.

    Every unit of work is bound to one tenant. Pulse's own cross-tenant tasks (the sweeper,
    claiming a job by its id, login, maintenance) open theirs with `system_scope(task)` /
    `system_work(task)`, naming themselves; nothing else can reach the wildcard scope.
    """

    def __init__(self, url: str, *, prepared_statements: bool = True):
        self.url = url
        self.engine = make_engine(url)
        # Off behind a pooler that hands one client's statements to several server
        # connections (PgBouncer's transaction pooling): an EXECUTE must meet its PREPARE.
        self.prepared_statements = prepared_statements
        # Names this database in per-process caches (app.tenant_routing), without its password.
        self.key = self.engine.url.render_as_string(hide_password=True)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        if self.is_postgres:
            event.listen(self._factory, "after_begin", _set_tenant_scope)
        # On a SQLite file the units of work of the delivery path and ingest commit in groups.
        self._groups = WriteGroups(self.engine) if sqlite_file(url) else None

    def session(self, tenant_id: str) -> AbstractContextManager[Session]:
        """A session committed on success and rolled back on error, bound to one tenant."""
        return self._session(tenant_scope(tenant_id))

    def system_scope(self, task: str) -> AbstractContextManager[Session]:
        """A session across every tenant, for Pulse's own task `task` (it says so in the name)."""
        return self._session(system_scope_for(task))

    @contextmanager
    def _session(self, scope: str) -> Iterator[Session]:
        session = self._factory()
        session.info["tenant_id"] = scope
        session.info["database"] = self
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def work(self, tenant_id: str) -> AbstractContextManager[Session | Work]:
        """The delivery path's unit of work for one tenant (see `_work`)."""
        return self._work(tenant_scope(tenant_id))

    def system_work(self, task: str) -> AbstractContextManager[Session | Work]:
        """The delivery path's unit of work across every tenant, for Pulse's own task `task`."""
        return self._work(system_scope_for(task))

    @contextmanager
    def _work(self, scope: str) -> Iterator[Session | Work]:
        """A unit of work for the delivery path: statements compiled once, run on the driver.

        On PostgreSQL it is a transaction on one pooled connection whose statements skip
        SQLAlchemy's per-execution work (cache keys, result processing); its BEGIN and the
        tenant's scope travel with its first statement, so a transaction of one statement
        costs two round trips (`Work.run_alone`: one). On a SQLite file it is a session whose
        work commits together with other threads' (app.sqlite_groups); elsewhere (SQLite in
        memory) a plain session.
        """
        if self._groups is not None:
            with self._groups.unit({"tenant_id": scope, "database": self}) as session:
                yield session
            return
        if not self.is_postgres:
            with self._session(scope) as session:
                yield session
            return
        # The driver's errors are raised as SQLAlchemy's (OperationalError, IntegrityError...),
        # as on every other path, so callers catch one family whichever path ran.
        driver_error = self.engine.dialect.loaded_dbapi.Error
        try:
            connection = self.engine.raw_connection()
        except driver_error as error:
            raise DBAPIError.instance(None, None, error, driver_error) from error
        work = Work(connection, scope, self)
        try:
            # The Work says BEGIN and COMMIT itself: the driver's own BEGIN is a round trip
            # of its own before every transaction's first statement.
            connection.dbapi_connection.autocommit = True
            yield work
            work.commit()
        except BaseException as error:
            try:
                work.rollback()
            except Exception:  # the connection is gone; the pool replaces it
                connection.invalidate()
            if isinstance(error, driver_error):
                raise DBAPIError.instance(None, None, error, driver_error) from error
            raise
        finally:
            if work.discard:
                connection.invalidate()
            else:
                if connection.dbapi_connection is not None:
                    connection.dbapi_connection.autocommit = False
                connection.close()

    def rls_bypass(self) -> str | None:
        """Why this connection's role is not bound by row-level security, or None when it is.

        A superuser and a role with BYPASSRLS skip every policy; the owner of the tables is
        bound only because the migrations FORCE the policies. SQLite has no such thing.
        """
        if not self.is_postgres:
            return None
        with self.engine.connect() as connection:
            row = connection.execute(
                text("SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            ).first()
        if row is None:
            return None
        role, superuser, bypass = row
        if superuser:
            return f"role {role!r} is a superuser"
        if bypass:
            return f"role {role!r} has BYPASSRLS"
        return None

    def warn_if_rls_bypassed(self, process: str) -> None:
        """Log a warning at start when row-level security would not hold for this process."""
        try:
            reason = self.rls_bypass()
        except Exception as exc:  # the database may be down at start; readiness reports that
            log.warning("%s could not check its database role: %s", process, type(exc).__name__)
            return
        if reason:
            log.warning(
                "%s connects to the database as a role that bypasses row-level security (%s): "
                "tenant isolation rests on the application's queries alone; connect as a role "
                "that is neither superuser nor BYPASSRLS (see README, Deploying)",
                process,
                reason,
            )

    def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Drop pooled connections (after a fork, a worker must not share its parent's)."""
        if self._groups is not None:
            self._groups.close()
        self.engine.dispose()


def _set_tenant_scope(session: Session, _transaction, connection) -> None:
    # Local to the transaction: a pooled connection never carries one tenant's scope to another.
    connection.execute(
        text("SELECT set_config('app.tenant_id', :tenant, true)"),
        {"tenant": session.info["tenant_id"]},
    )


def is_postgres(session: Session | Work) -> bool:
    if isinstance(session, Work):
        return True
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
    # Nothing varies between two of them: one cache key, so statements holding it are
    # compiled once (without it SQLAlchemy compiles every execution anew).
    _traverse_internals: list = []


class DbAfter(ColumnElement):
    """`seconds` (a SQL expression, usually a bound parameter) from now on the database's clock."""

    type = UtcDateTime()
    inherit_cache = True

    def __init__(self, seconds):
        self.seconds = seconds if isinstance(seconds, ColumnElement) else literal(float(seconds))

    def get_children(self, **_kwargs):
        return (self.seconds,)

    _traverse_internals = [("seconds", InternalTraversal.dp_clauseelement)]


class NoIndexKey(ColumnElement):
    """A column compared as a plain value on SQLite (`+column`), never used as an index key there.

    SQLite's planner, with no statistics (a new file that was never ANALYZEd), took the
    (status, next_attempt_at) index for a tenant's share counts, since the due time narrows
    that index too, and read every waiting job of every tenant; on the due time as a plain
    value it takes the partial index of the tenant's queue. PostgreSQL renders the column.
    """

    inherit_cache = True

    def __init__(self, column):
        self.column = column
        self.type = column.type

    def get_children(self, **_kwargs):
        return (self.column,)

    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]


@compiles(NoIndexKey)
def _no_index_key_default(element, compiler, **kw):
    return compiler.process(element.column, **kw)


@compiles(NoIndexKey, "sqlite")
def _no_index_key_sqlite(element, compiler, **kw):
    return "+" + compiler.process(element.column, **kw)


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
    # Cast, so that a prepared statement's parameter here has a type (app.db.prepared).
    return f"(now() + make_interval(secs => CAST({compiler.process(element.seconds, **kw)} AS DOUBLE PRECISION)))"


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


_COMPILED: dict[int, tuple[str, dict[str, Any], dict[str, Any], Any]] = {}
_DIALECT = postgresql.psycopg2.dialect()
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _compiled(statement) -> tuple[str, dict[str, Any], dict[str, Any], Any]:
    """`statement`'s SQL for psycopg2, its constant parameters, bind processors and row type.

    Compiled once per statement object: the delivery path's statements are module constants,
    and their only expanding parameters are constant lists (of statuses), expanded here.
    """
    found = _COMPILED.get(id(statement))
    if found is None:
        compiled = statement.compile(dialect=_DIALECT)
        expanded = compiled._process_parameters_for_postcompile(compiled.construct_params(_check=False), _populate_self=False)
        names = [column.key for column in getattr(statement, "selected_columns", ())] or [
            column.key for column in getattr(statement, "_returning", ())
        ]
        row_type = namedtuple("Row", names, rename=True) if names else None
        found = _COMPILED[id(statement)] = (expanded.statement, dict(expanded.parameters), compiled._bind_processors, row_type)
        # Keep the statement alive with its id.
        _KEEP.append(statement)
    return found


_KEEP: list = []


class _Plan:
    """A statement PostgreSQL plans once per connection: its PREPARE text and its EXECUTE call."""

    def __init__(self, name: str, statement):
        from psycopg2.extensions import adapt

        sql, constants, _processors, _row_type = _compiled(statement)
        variables: list[str] = []

        def placeholder(match: re.Match) -> str:
            key = match.group(1)
            if not key.startswith("p_"):
                # A constant (a status, a list of them): written into the plan, so the partial
                # indexes whose predicates name those values still match it.
                return adapt(constants[key]).getquoted().decode().replace("%", "%%")
            if key not in variables:
                variables.append(key)
            return f"${variables.index(key) + 1}"

        self.name = name
        self.prepare = f"PREPARE {name} AS " + _PLACEHOLDER.sub(placeholder, sql)
        self.execute = f"EXECUTE {name}(" + ", ".join(f"%({key})s" for key in variables) + ")"


_PLANS: dict[int, _Plan] = {}
# A connection plans a statement again after this many runs of it. Its first plan may have
# been made while the tables were nearly empty (a new database), where every index looks
# alike; PostgreSQL keeps that plan until the table's statistics change, and autovacuum's
# first ANALYZE can be a minute away.
REPLAN_AFTER = frozenset({20, 100, 1_000, 10_000})


def prepared(statement):
    """Mark a module-level statement to be planned once per connection (PREPARE / EXECUTE).

    For the statements every delivery or alert runs, whose plan is the same whatever the
    values (a job by its id, a tenant's queue through its index): PostgreSQL spent more CPU
    planning them than running them. Not for a statement whose best plan depends on the
    values. A connection plans each again after some runs (`REPLAN_AFTER`).
    """
    _PLANS[id(statement)] = _Plan(f"pulse_{len(_PLANS) + 1}", statement)
    return statement


# The transaction's tenant scope (`app.tenant_id`), the first statement of every Work:
# prepared like the statements it travels with, since planning even this took PostgreSQL
# longer than running it.
_SCOPE = prepared(
    select(func.set_config(bindparam("scope_setting", "app.tenant_id"), bindparam("p_scope"), bindparam("scope_is_local", True)))
)


class RawResult:
    """Rows of one statement run by `Work`, with the attribute access SQLAlchemy rows have."""

    def __init__(self, rows: list, rowcount: int):
        self._rows = rows
        self.rowcount = rowcount

    def first(self):
        return self._rows[0] if self._rows else None

    def scalar(self):
        return self._rows[0][0] if self._rows else None

    def all(self) -> list:
        return list(self._rows)

    def __iter__(self):
        return iter(self._rows)


class Work:
    """One PostgreSQL transaction of the delivery path (see `Database.work`).

    The driver runs in autocommit mode and the Work writes the transaction's edges itself:
    `BEGIN`, the tenant's scope and any statements deferred with `defer` go in one message
    with the first statement that is run, and `COMMIT` is sent at the end. A unit of work of
    a single statement can instead be run as that message's implicit transaction
    (`run_alone`), which PostgreSQL commits as soon as the statement ends: one round trip.
    Each statement of a message still takes its own snapshot (READ COMMITTED).
    """

    is_postgres = True

    def __init__(self, connection, tenant_id: str, database: "Database | None" = None):
        self._connection = connection
        self._scope = tenant_id
        # The database it runs on: what a cache keyed per database needs (app.tenant_routing).
        self.database = database
        self._deferred: list[str] = []
        self._deferred_values: dict[str, Any] = {}
        # "new" (nothing sent), "open" (BEGIN sent) or "done" (committed by run_alone).
        self._state = "new"
        # Whether the connection is to be closed instead of going back to the pool.
        self.discard = False

    def defer(self, statement, params: dict[str, Any]) -> None:
        """Send `statement` (its result unread) ahead of the next one, in the same message."""
        sql, values = self._bound(statement, params)
        _merge(self._deferred_values, values)
        self._deferred.append(statement)

    def run(self, statement, params: dict[str, Any]) -> RawResult:
        """Run `statement` in this transaction."""
        return self._send(statement, params, alone=False)

    def run_alone(self, statement, params: dict[str, Any]) -> RawResult:
        """Run `statement` (after any deferred ones) as the whole unit of work, committed when it ends.

        Only as the Work's first statement; nothing can run in it afterwards.
        """
        if self._state != "new":
            raise RuntimeError("run_alone must be the only statement of its unit of work")
        return self._send(statement, params, alone=True)

    def commit(self) -> None:
        if self._deferred:
            self._send(None, {}, alone=self._state == "new")
        if self._state == "open":
            self._execute("COMMIT", {})
        self._state = "done"

    def rollback(self) -> None:
        # "open" also after a failed first message: its BEGIN opened the transaction that
        # failed. A failed run_alone was rolled back by PostgreSQL itself.
        opened, self._state, self._deferred = self._state == "open", "done", []
        if opened:
            self._execute("ROLLBACK", {})

    def _bound(self, statement, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        sql, constants, processors, _row_type = _compiled(statement)
        values = {**constants, **params}
        for name, process in processors.items():
            if name in values:
                values[name] = process(values[name])
        return sql, values

    def _send(self, statement, params: dict[str, Any], *, alone: bool) -> RawResult:
        if self._state == "done":
            raise RuntimeError("this unit of work has ended")
        statements: list = []
        values: dict[str, Any] = {}
        if self._state == "new":
            # The transaction's scope, local to it: a pooled connection never carries one
            # tenant's scope to another.
            statements.append(_SCOPE)
            values.update(self._bound(_SCOPE, {"p_scope": self._scope})[1])
        statements += self._deferred
        values.update(self._deferred_values)
        self._deferred, self._deferred_values = [], {}
        row_type = None
        if statement is not None:
            statements.append(statement)
            _merge(values, self._bound(statement, params)[1])
            row_type = _compiled(statement)[3]
        parts, plans, preparing = self._texts(statements)
        if self._state == "new" and not alone:
            parts.insert(0, "BEGIN")
        self._state = "done" if alone else "open"
        try:
            result = self._execute("; ".join(parts), values, row_type)
        except BaseException:
            if preparing:
                # Whether the PREPARE ran before the failure is unknown: this connection is
                # replaced rather than asked.
                self.discard = True
            raise
        planned = self._connection.info.setdefault("pulse_plans", {})
        for plan in plans:
            planned[plan.name] = planned.get(plan.name, 0) + 1
        return result

    def _texts(self, statements: list) -> tuple[list[str], list[_Plan], bool]:
        """The SQL of one message's statements, each prepared one as an EXECUTE of its plan.

        Returns the texts, the plans they run, and whether a plan is (re)prepared first.
        """
        use_plans = self.database is None or self.database.prepared_statements
        planned = self._connection.info.setdefault("pulse_plans", {})
        parts: list[str] = []
        plans: list[_Plan] = []
        preparing = False
        for statement in statements:
            plan = _PLANS.get(id(statement)) if use_plans else None
            if plan is None:
                parts.append(_compiled(statement)[0])
                continue
            if plan not in plans:
                runs = planned.get(plan.name)
                if runs is None:
                    parts.append(plan.prepare)
                    preparing = True
                elif runs in REPLAN_AFTER:
                    parts += [f"DEALLOCATE {plan.name}", plan.prepare]
                    preparing = True
                plans.append(plan)
            parts.append(plan.execute)
        return parts, plans, preparing

    def _execute(self, sql: str, values: dict[str, Any], row_type=None) -> RawResult:
        cursor = self._connection.cursor()
        try:
            cursor.execute(sql, values)
            rows = [row_type(*row) for row in cursor.fetchall()] if cursor.description and row_type else []
            return RawResult(rows, cursor.rowcount)
        finally:
            cursor.close()


def _merge(values: dict[str, Any], more: dict[str, Any]) -> None:
    """Add the parameters of another statement of the same message; they must agree by name."""
    for name, value in more.items():
        if name in values and values[name] != value:
            raise ValueError(f"statements of one message disagree on the parameter {name!r}")
    values.update(more)


def run(session: Session | Work, statement, **params):
    """Run a Core statement compiled once: on the driver in a Work (see `Database.work`), else
    on the session's connection; either way without ORM bookkeeping.

    The statements' parameters are named p_<name> (a column's own name is reserved in UPDATE)
    and given here without the prefix.
    """
    values = {f"p_{name}": value for name, value in params.items()}
    if isinstance(session, Work):
        return session.run(statement, values)
    return session.connection().execute(statement, values)


def run_alone(session: Session | Work, statement, **params):
    """`run`, for a unit of work whose only statement this is (see `Work.run_alone`)."""
    if isinstance(session, Work):
        return session.run_alone(statement, {f"p_{name}": value for name, value in params.items()})
    return run(session, statement, **params)


def defer(session: Session | Work, statement, **params) -> None:
    """Run `statement`, whose result is not needed: in a Work, with the next statement's message."""
    if isinstance(session, Work):
        session.defer(statement, {f"p_{name}": value for name, value in params.items()})
    else:
        run(session, statement, **params)
