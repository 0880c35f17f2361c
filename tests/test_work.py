"""The delivery path's unit of work on PostgreSQL (app.db.Work), against the real database.

A Work writes its transaction's edges itself: BEGIN and the tenant's scope travel with the
first statement, COMMIT is sent at the end, and a unit of one statement runs alone as its
message's implicit transaction. These tests hold it to being a transaction all the same.
"""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, column, func, select, table, update
from sqlalchemy.exc import DataError

from app.db import Database, defer, prepared, run, run_alone
from app.models import Tenant

TENANTS = Tenant.__table__
RENAME = update(TENANTS).where(TENANTS.c.tenant_id == bindparam("p_tenant_id")).values(name=bindparam("p_name")).returning(TENANTS.c.name)
SCOPE = select(func.current_setting("app.tenant_id", True).label("scope"))
# Planned once per connection, and how a connection tells which statements it has prepared.
NAME_OF = prepared(select(TENANTS.c.name).where(TENANTS.c.tenant_id == bindparam("p_tenant_id")))
_PREPARED = table("pg_prepared_statements", column("name"), column("statement"), column("prepare_time"))
# NAME_OF's own plan, by the name it is prepared under: a plan's `statement` is the whole
# message that prepared it, which may have prepared others (the tenant's scope) too.
_NAME_OF_PLAN = _PREPARED.c.statement.like("%PREPARE " + _PREPARED.c.name + " AS SELECT tenants.name %")
PREPARED_HERE = select(func.count()).select_from(_PREPARED).where(_NAME_OF_PLAN)
PLANNED_AT = select(_PREPARED.c.prepare_time).where(_NAME_OF_PLAN)
# Fails at execution: the text is no integer.
BAD_CAST = select((bindparam("p_text") + 0).label("number"))


def name_of(db, tenant_id: str) -> str:
    with db.system_scope("tests") as session:
        return session.scalar(select(TENANTS.c.name).where(TENANTS.c.tenant_id == tenant_id))


def test_statements_of_one_work_commit_together(db, tenant):
    with db.work(tenant.tenant_id) as work:
        run(work, RENAME, tenant_id=tenant.tenant_id, name="first")
        assert run(work, SCOPE).scalar() == tenant.tenant_id
        run(work, RENAME, tenant_id=tenant.tenant_id, name="second")
    assert name_of(db, tenant.tenant_id) == "second"


def test_a_failure_rolls_back_what_the_work_ran_before_it(db, tenant):
    before = name_of(db, tenant.tenant_id)
    with pytest.raises(DataError):
        with db.work(tenant.tenant_id) as work:
            run(work, RENAME, tenant_id=tenant.tenant_id, name="never")
            run(work, BAD_CAST, text="not a number")
    assert name_of(db, tenant.tenant_id) == before
    # The connection went back to the pool usable, outside any transaction and scope.
    with db.work(tenant.tenant_id) as work:
        assert run(work, SCOPE).scalar() == tenant.tenant_id
    with db.engine.connect() as connection:
        assert connection.execute(SCOPE).scalar() in (None, "")


def test_run_alone_is_the_whole_unit_committed_at_once(db, tenant):
    with db.work(tenant.tenant_id) as work:
        assert run_alone(work, RENAME, tenant_id=tenant.tenant_id, name="alone").scalar() == "alone"
        with pytest.raises(RuntimeError, match="ended"):
            run(work, SCOPE)
    assert name_of(db, tenant.tenant_id) == "alone"


def test_run_alone_must_come_first(db, tenant):
    with pytest.raises(RuntimeError, match="only statement"):
        with db.work(tenant.tenant_id) as work:
            run(work, SCOPE)
            run_alone(work, RENAME, tenant_id=tenant.tenant_id, name="late")
    assert name_of(db, tenant.tenant_id) != "late"


def test_a_deferred_statement_runs_with_the_next_and_fails_with_it(db, tenant):
    with db.work(tenant.tenant_id) as work:
        defer(work, RENAME, tenant_id=tenant.tenant_id, name="deferred")
        assert name_of(db, tenant.tenant_id) != "deferred", "not sent yet"
        assert run_alone(work, SCOPE).scalar() == tenant.tenant_id
    assert name_of(db, tenant.tenant_id) == "deferred"

    with pytest.raises(DataError):
        with db.work(tenant.tenant_id) as work:
            defer(work, RENAME, tenant_id=tenant.tenant_id, name="rolled back")
            run_alone(work, BAD_CAST, text="not a number")
    assert name_of(db, tenant.tenant_id) == "deferred"


def test_a_deferred_statement_left_at_the_end_is_still_run(db, tenant):
    with db.work(tenant.tenant_id) as work:
        defer(work, RENAME, tenant_id=tenant.tenant_id, name="at the end")
    assert name_of(db, tenant.tenant_id) == "at the end"


def test_deferred_statements_must_agree_on_their_parameters(db, tenant):
    with pytest.raises(ValueError, match="p_name"):
        with db.work(tenant.tenant_id) as work:
            defer(work, RENAME, tenant_id=tenant.tenant_id, name="one")
            defer(work, RENAME, tenant_id=tenant.tenant_id, name="other")
    with pytest.raises(ValueError, match="p_name"):
        with db.work(tenant.tenant_id) as work:
            defer(work, RENAME, tenant_id=tenant.tenant_id, name="one")
            run(work, RENAME, tenant_id=tenant.tenant_id, name="other")
    assert name_of(db, tenant.tenant_id) not in ("one", "other"), "nothing was sent"


def test_a_prepared_statement_is_planned_once_per_connection(db, tenant):
    for _ in range(3):
        with db.work(tenant.tenant_id) as work:
            assert run(work, NAME_OF, tenant_id=tenant.tenant_id).scalar() == name_of(db, tenant.tenant_id)
            # Whichever pooled connection ran it holds its plan, made once.
            assert run(work, PREPARED_HERE).scalar() == 1


def test_a_statement_is_planned_again_as_its_runs_add_up(database_url, tenant, monkeypatch):
    # Its first plan may have been made on nearly empty tables.
    monkeypatch.setattr("app.db.REPLAN_AFTER", frozenset({2}))
    fresh = Database(database_url)
    try:
        planned_at = []
        with fresh.work(tenant.tenant_id) as work:  # one Work: one connection, new to the statement
            for _ in range(4):
                assert run(work, NAME_OF, tenant_id=tenant.tenant_id).scalar() == name_of(fresh, tenant.tenant_id)
                planned_at.append(run(work, PLANNED_AT).scalar())
        first, again = planned_at[0], planned_at[2]
        assert planned_at == [first, first, again, again] and again > first
    finally:
        fresh.dispose()


def test_prepared_statements_can_be_switched_off(database_url, tenant):
    # As behind a pooler in transaction mode (PULSE_PREPARED_STATEMENTS=false).
    plain = Database(database_url, prepared_statements=False)
    try:
        with plain.work(tenant.tenant_id) as work:
            assert run(work, NAME_OF, tenant_id=tenant.tenant_id).scalar() == name_of(plain, tenant.tenant_id)
            assert run(work, PREPARED_HERE).scalar() == 0
    finally:
        plain.dispose()
