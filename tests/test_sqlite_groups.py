"""Group commit on a SQLite file (app.sqlite_groups): units of many threads, one COMMIT each group.

Every test runs on a real SQLite file through the engine Pulse makes for it (turn-taking
connections), and checks what another connection sees: a unit's work is on disk when its
thread leaves it, a failing unit undoes only itself, and a failed COMMIT fails every unit of
its group.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from app.db import make_engine
from app.sqlite_groups import WriteGroups
from tests.support import wait_for


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "groups.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        connection.exec_driver_sql(
            "CREATE TABLE item (id INTEGER PRIMARY KEY, owner TEXT, parent_id INTEGER"
            " REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
        )
    groups = WriteGroups(engine)
    yield path, groups
    groups.close()
    engine.dispose()


def _insert(session, owner: str, parent_id: int | None = None) -> None:
    session.execute(text("INSERT INTO item (owner, parent_id) VALUES (:owner, :parent)"), {"owner": owner, "parent": parent_id})


def _owners(path) -> list[str]:
    """What a connection of its own (another process, say) sees committed."""
    with sqlite3.connect(path) as connection:
        return sorted(owner for (owner,) in connection.execute("SELECT owner FROM item"))


def _in_one_group(groups: WriteGroups, first, second) -> dict[str, BaseException | None]:
    """Run unit `first` in one thread and `second` in another, the second waiting for its turn
    while the first runs: the two end in one transaction."""
    outcome: dict[str, BaseException | None] = {}
    second_waits = threading.Event()

    def run(name, body, before=None):
        try:
            if before:
                before()
            with groups.unit({}) as session:
                body(session)
            outcome[name] = None
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome[name] = exc

    def first_body(session):
        first(session)
        second_waits.set()
        wait_for(lambda: groups._waiting == 1, timeout=5, message="the second unit waits")

    threads = [
        threading.Thread(target=run, args=("first", first_body)),
        threading.Thread(target=run, args=("second", second, second_waits.wait)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return outcome


def test_a_thread_leaves_its_unit_once_its_work_is_committed(database):
    path, groups = database
    seen_after: dict[str, list[str]] = {}

    def one(owner: str) -> None:
        for number in range(20):
            with groups.unit({}) as session:
                _insert(session, f"{owner}-{number}")
            # Another connection sees it the moment the unit is left: it is on disk.
            seen_after[f"{owner}-{number}"] = _owners(path)

    threads = [threading.Thread(target=one, args=(f"t{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert len(_owners(path)) == 160
    assert all(owner in seen for owner, seen in seen_after.items())
    # Units shared their COMMITs: fewer transactions than units.
    assert groups.transactions < 160


def test_a_failing_unit_undoes_only_itself(database):
    path, groups = database

    def fails(session):
        _insert(session, "second")
        raise RuntimeError("the unit's own error")

    outcome = _in_one_group(groups, lambda session: _insert(session, "first"), fails)

    assert outcome["first"] is None
    assert isinstance(outcome["second"], RuntimeError)
    assert _owners(path) == ["first"]
    assert groups.transactions == 1


def test_a_failed_commit_fails_every_unit_of_its_group(database):
    path, groups = database
    # A row whose parent does not exist: the deferred foreign key fails the COMMIT, not the INSERT.
    outcome = _in_one_group(groups, lambda session: _insert(session, "first"), lambda session: _insert(session, "orphan", 42))

    assert isinstance(outcome["first"], OperationalError)
    assert isinstance(outcome["second"], (OperationalError, IntegrityError))
    assert _owners(path) == []
    # The group's connection was replaced: the next unit commits as usual.
    with groups.unit({}) as session:
        _insert(session, "after")
    assert _owners(path) == ["after"]


def test_a_lone_unit_commits_at_once(database):
    path, groups = database
    started = time.monotonic()
    with groups.unit({}) as session:
        _insert(session, "alone")
    assert _owners(path) == ["alone"]
    assert time.monotonic() - started < 1
    assert groups.transactions == 1


def test_another_process_writes_between_groups(database, tmp_path):
    """The group holds the writer's turn only while it runs: the sqlite3 shell's kind of
    writer (no turn, SQLite's busy timeout) gets in once a group committed."""
    path, groups = database
    with groups.unit({}) as session:
        _insert(session, "group")
    with sqlite3.connect(path, timeout=5) as connection:
        connection.execute("INSERT INTO item (owner) VALUES ('outsider')")
    with groups.unit({}) as session:
        _insert(session, "group again")
    assert _owners(path) == ["group", "group again", "outsider"]
