"""Group commit on the embedded SQLite file: the units of work of many threads, one COMMIT.

Under `make run` each delivery writes twice (its claim, then its outcome), and each write was
a transaction of its own: it took the writer's turn (app.sqlite_writer) and ended with a COMMIT
that waits for the disk. Measured on a 2-core machine with the worker's eight threads: a turn
was held 2.0 ms (COMMIT 0.8 ms, statements 0.8 ms), handing it to the next thread took another
1.3 ms, and five or six of the eight threads were waiting for it at any moment. Deliveries
stopped at about 150/s whatever else was done.

Here the units of one process run one after another on a single connection, inside one
transaction that took the turn once (`BEGIN IMMEDIATE`). Each unit is a SAVEPOINT of its own,
so a unit that fails undoes only itself. The thread whose unit ends with nobody waiting behind
it, or the one that ends the `max_units`th unit, commits for all of them. Every thread leaves
its unit only when the COMMIT that holds it is done (or raises that COMMIT's error): nothing is
acknowledged, sent or answered before it is on disk, exactly as with a transaction per unit.

A unit must not open a second writing connection of its own: the turn is its group's, and that
write would wait for itself until the turn's timeout. The delivery path's and ingest's units
(`Database.work`) never do; the rest of Pulse keeps plain sessions. This is the same technique
as PostgreSQL's and InnoDB's group commit; SQLAlchemy offers the savepoints
(`join_transaction_mode="create_savepoint"`), not the grouping.
"""

from __future__ import annotations

import os
import threading
import weakref
from contextlib import contextmanager
from typing import Any, Iterator

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.sqlite_writer import TURN_TIMEOUT_SECONDS

# Units committed together at most: a group holds the writer's turn while it runs, and the
# other processes (the web's ingest, beat) wait that long for it.
MAX_UNITS = 8
# How often a thread waiting for its group's commit checks that someone will make it.
_WATCH_SECONDS = 0.05


class _Transaction:
    """One group's transaction as the threads of its units see it: done or not, and how."""

    __slots__ = ("units", "ended", "error")

    def __init__(self) -> None:
        self.units = 0  # units done in it, waiting for its COMMIT
        self.ended = False
        self.error: BaseException | None = None


class WriteGroups:
    """The group commit of one SQLite database in one process (see the module's docstring)."""

    def __init__(self, engine: Engine, max_units: int = MAX_UNITS):
        self._engine = engine
        self._max_units = max_units
        self._reset()
        reset = weakref.WeakMethod(self._reset)

        def reset_in_child() -> None:
            method = reset()
            if method is not None:
                method()

        os.register_at_fork(after_in_child=reset_in_child)

    def _reset(self) -> None:
        # A forked child starts with no group: its parent's locks may have been held by a
        # thread that does not exist in the child, and SQLite connections must not cross a
        # fork (the parent's is left alone, not closed).
        # One unit at a time on the shared connection.
        self._unit = threading.Lock()
        # Guards the fields below and wakes the threads waiting for a commit.
        self._state = threading.Condition()
        self._waiting = 0  # threads waiting to run a unit
        self._current = _Transaction()  # the one the next unit joins
        self._ended = 0  # transactions ended so far
        self._connection: Connection | None = None

    @property
    def transactions(self) -> int:
        """Transactions this process's units have ended (committed or failed) so far."""
        return self._ended

    @contextmanager
    def unit(self, info: dict[str, Any]) -> Iterator[Session]:
        """A session whose work commits with its group's; it returns once that commit is done."""
        self._enter()
        failed = True
        try:
            session = Session(bind=self._connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
            session.info.update(info)
            try:
                yield session
                session.commit()  # RELEASE SAVEPOINT: the unit joins the group
                failed = False
            except BaseException:
                session.rollback()  # ROLLBACK TO SAVEPOINT: the others' work stays
                raise
            finally:
                session.close()
        finally:
            transaction = self._leave(joined=not failed)
        self._await(transaction)

    # The turn of units ------------------------------------------------------------------

    def _enter(self) -> None:
        with self._state:
            self._waiting += 1
        try:
            if not self._unit.acquire(timeout=TURN_TIMEOUT_SECONDS):
                raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked (no turn to write within 30 s)"))
        finally:
            with self._state:
                self._waiting -= 1
        try:
            self._begin()
        except BaseException:
            self._unit.release()
            raise

    def _begin(self) -> None:
        if self._connection is None:
            self._connection = self._engine.connect()
        connection = self._connection
        if connection.in_transaction():
            return
        connection.begin()
        try:
            # The write lock and the writer's turn up front: a transaction that read first and
            # wrote later could find its snapshot outdated by another process's commit.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self._discard()
            raise

    def _leave(self, joined: bool) -> _Transaction:
        """End this thread's unit (the unit lock is held): commit the group now, or leave it to
        the unit behind. Returns the transaction whose end the unit waits for."""
        try:
            transaction = self._current
            if joined:
                transaction.units += 1
            with self._state:
                waiting = self._waiting
            if not self._open():
                self._end_lost()
            elif not waiting or transaction.units >= self._max_units:
                self._finish()
            return transaction
        finally:
            self._unit.release()

    def _open(self) -> bool:
        return self._connection is not None and self._connection.in_transaction()

    def _end_lost(self) -> None:
        """The transaction is gone without a COMMIT (SQLite rolls a whole transaction back
        after some errors, a failed unit may have lost the connection): its units failed."""
        if self._current.units:
            self._end(Exception("the transaction of the group was rolled back"))

    def _finish(self) -> None:
        """COMMIT the open transaction (the unit lock is held) and wake its units' threads."""
        error: BaseException | None = None
        try:
            self._connection.commit()
        except BaseException as exc:
            error = exc
            self._discard()
        self._end(error)

    def _end(self, error: BaseException | None) -> None:
        with self._state:
            ended, self._current = self._current, _Transaction()
            ended.ended, ended.error = True, error
            self._ended += 1
            self._state.notify_all()

    def _discard(self) -> None:
        """Roll back and drop the connection after a failure; the next unit opens another."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.rollback()
        except Exception:
            connection.invalidate()
        finally:
            connection.close()

    def _await(self, transaction: _Transaction) -> None:
        """Return once `transaction` has ended; raise its COMMIT's error, if any."""
        with self._state:
            while not transaction.ended:
                self._state.wait(_WATCH_SECONDS)
                if not transaction.ended and not self._waiting:
                    # The units behind were given up on (a timeout, an error before their
                    # unit began): nobody else will commit this group.
                    self._state.release()
                    try:
                        self._commit_if_still(transaction)
                    finally:
                        self._state.acquire()
        if transaction.error is not None:
            raise OperationalError("COMMIT", {}, transaction.error) from transaction.error

    def _commit_if_still(self, transaction: _Transaction) -> None:
        if not self._unit.acquire(blocking=False):
            return  # a unit is running: its thread decides
        try:
            if self._current is transaction:
                self._finish() if self._open() else self._end_lost()
        finally:
            self._unit.release()

    def close(self) -> None:
        """Close the shared connection (tests; a process at exit)."""
        with self._unit:
            if self._open():
                self._finish()
            if self._connection is not None:
                self._connection.close()
                self._connection = None
