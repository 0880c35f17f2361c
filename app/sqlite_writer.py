"""Turns at writing the SQLite file of the embedded default, handed over without polling.

SQLite lets one connection write at a time. The others wait in its busy handler, which sleeps
1, 2, 5, 10, ... up to 100 ms between tries, so under load the sleeping decides who writes
next. Under `make run` that is a web process and a worker of eight threads, each delivery two
short write transactions: the web (whose gevent hub sleeps with it) lost to the worker's
threads, and 42% of its samples were inside its first INSERT, waiting; ingest ran at 30-40
alerts/s.

Here every Pulse connection takes a turn before a statement that writes and gives it back
as soon as its transaction ends: threads of one process queue on a lock, processes on an
flock(2) of a file beside the database (`<database>-writer`), and the kernel wakes a waiter
the moment the turn is free. SQLite's own busy timeout stays as the fallback for writers that
take no turn (Alembic, the sqlite3 shell). No library offers this for the sqlite3 module:
its only hook is `sqlite3.connect(factory=...)`, a Connection subclass, which is what this is.
"""

from __future__ import annotations

import fcntl
import functools
import os
import re
import sqlite3
import sys
import threading

# How long a thread waits for its process's turn before it gives up, as SQLite's own busy
# timeout would: a caller that nests a second writing connection inside its own transaction
# fails instead of waiting forever on itself.
TURN_TIMEOUT_SECONDS = 30.0

# Statements that start a write: the first keyword, a data-changing statement after a WITH
# clause, or a transaction that takes the write lock at once (BEGIN IMMEDIATE / EXCLUSIVE).
# Everything else (SELECT, PRAGMA, EXPLAIN, a deferred BEGIN, SAVEPOINT...) takes no turn.
_WRITE = re.compile(
    r"^\s*(?:INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|VACUUM|REINDEX)\b"
    r"|^\s*BEGIN\s+(?:IMMEDIATE|EXCLUSIVE)\b"
    r"|^\s*WITH\b.*\b(?:INSERT|UPDATE|DELETE|REPLACE)\b",
    re.IGNORECASE | re.DOTALL,
)


@functools.lru_cache(maxsize=2048)
def writes(sql: str) -> bool:
    """Whether `sql` needs the turn (the decision is kept per statement text)."""
    return _WRITE.search(sql) is not None


def _cooperative() -> bool:
    """Whether this process runs greenlets (the web's gevent worker)."""
    if "gevent.monkey" not in sys.modules:
        return False
    from gevent import monkey

    return monkey.is_module_patched("threading")


class WriterTurn:
    """The right to write the database file, one connection of one process at a time."""

    def __init__(self, database_path: str):
        self.path = f"{database_path}-writer"
        self._fd: int | None = None
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        # A forked child takes turns of its own: a new lock (the parent's may have been held
        # by another thread) and a file opened anew, since flock(2) belongs to an open file
        # and one shared with the parent would be one lock for both.
        if self._fd is not None:
            os.close(self._fd)
        self._lock = threading.Lock()
        self._fd = None

    def acquire(self) -> None:
        """Wait for the turn; sqlite3.OperationalError if this process's own turn never frees."""
        if not self._lock.acquire(timeout=TURN_TIMEOUT_SECONDS):
            raise sqlite3.OperationalError("database is locked (no turn to write within 30 s)")
        try:
            if self._fd is None:  # opened by the first writer, which alone holds the lock here
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._lock_file()
        except BaseException:
            self._lock.release()
            raise

    def release(self) -> None:
        """Give the turn to the next waiter."""
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._lock.release()

    def _lock_file(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if not _cooperative():
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # the GIL is released while it waits
            return
        # Under gevent the wait runs in a native thread, so the hub serves other greenlets.
        import gevent

        waiting = gevent.get_hub().threadpool.spawn(fcntl.flock, self._fd, fcntl.LOCK_EX)
        try:
            waiting.get()
        except BaseException:
            # Interrupted (a timeout, a killed greenlet): the lock is taken all the same when
            # the native call returns, and handed back at once.
            waiting.rawlink(lambda _result: fcntl.flock(self._fd, fcntl.LOCK_UN))
            raise


class _TurnTakingCursor(sqlite3.Cursor):
    def execute(self, sql, parameters=()):
        self.connection._before(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            self.connection._after()

    def executemany(self, sql, parameters):
        self.connection._before(sql)
        try:
            return super().executemany(sql, parameters)
        finally:
            self.connection._after()

    def executescript(self, script):
        self.connection._before("CREATE")  # a script may write anything
        try:
            return super().executescript(script)
        finally:
            self.connection._after()


class TurnTakingConnection(sqlite3.Connection):
    """A sqlite3 connection that takes the writer's turn for its write transactions."""

    turn: WriterTurn

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._holding = False

    def cursor(self, factory=_TurnTakingCursor):
        return super().cursor(factory)

    def _before(self, sql: str) -> None:
        if not self._holding and writes(sql):
            self.turn.acquire()
            self._holding = True

    def _after(self) -> None:
        # A write outside a transaction (or one whose statement failed before it began)
        # is over when it returns; one inside a transaction ends with commit or rollback.
        if self._holding and not self.in_transaction:
            self._holding = False
            self.turn.release()

    def commit(self):
        try:
            super().commit()
        finally:
            self._after()

    def rollback(self):
        try:
            super().rollback()
        finally:
            self._after()

    def close(self):
        try:
            super().close()
        finally:
            if self._holding:
                self._holding = False
                self.turn.release()


# One turn per database file and process, whatever the engines made for it: two would be two
# locks, and a thread nesting a write on one inside its transaction on the other would wait
# in flock(2) for itself, with no time limit.
_TURNS: dict[str, WriterTurn] = {}
_TURNS_LOCK = threading.Lock()


def connection_factory(database_path: str) -> type[TurnTakingConnection]:
    """The `factory` for sqlite3.connect: connections to `database_path` that take turns."""
    with _TURNS_LOCK:
        turn = _TURNS.get(database_path)
        if turn is None:
            turn = _TURNS[database_path] = WriterTurn(database_path)
    return type("PulseSqliteConnection", (TurnTakingConnection,), {"turn": turn})
