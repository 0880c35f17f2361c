"""Writers of the embedded SQLite file take turns (app.sqlite_writer), across threads and processes."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from sqlalchemy import text

from app.db import make_engine
from app.sqlite_writer import WriterTurn, writes
from tests.support import ROOT


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "pulse.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        connection.execute(text("INSERT INTO counter VALUES (1, 0)"))
    yield path, engine
    engine.dispose()


def turn_is_free(path) -> bool:
    """Whether another open file of the turn could take it now (flock belongs to an open file)."""
    fd = os.open(f"{path}-writer", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


@pytest.mark.parametrize(
    ("sql", "needs_turn"),
    [
        ("SELECT 1", False),
        ("  select * from notification_jobs where updated_at > ?", False),
        ("PRAGMA journal_mode=WAL", False),
        ("WITH chosen AS (SELECT job_id FROM notification_jobs) SELECT * FROM chosen", False),
        ("INSERT INTO counter VALUES (2, 0)", True),
        ("\n  UPDATE counter SET n = n + 1", True),
        ("delete from counter", True),
        ("WITH chosen AS (SELECT job_id FROM j) UPDATE j SET hold = NULL WHERE job_id IN chosen", True),
        ("CREATE INDEX ix ON counter (n)", True),
    ],
)
def test_statements_that_write_take_the_turn(sql, needs_turn):
    assert writes(sql) is needs_turn


def test_a_write_holds_the_turn_until_its_transaction_commits(database):
    path, engine = database
    with engine.connect() as connection:
        connection.execute(text("SELECT n FROM counter"))
        assert turn_is_free(path)
        connection.execute(text("UPDATE counter SET n = n + 1"))
        assert not turn_is_free(path)
        connection.execute(text("SELECT n FROM counter"))
        assert not turn_is_free(path)
        connection.commit()
        assert turn_is_free(path)


def test_rollback_and_a_failed_statement_give_the_turn_back(database):
    path, engine = database
    with engine.connect() as connection:
        connection.execute(text("UPDATE counter SET n = 99"))
        connection.rollback()
        assert turn_is_free(path)
        with pytest.raises(Exception, match="UNIQUE"):
            connection.execute(text("INSERT INTO counter VALUES (1, 0)"))
        connection.rollback()
        assert turn_is_free(path)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT n FROM counter")).scalar() == 0


def test_a_connection_returned_mid_transaction_gives_the_turn_back(database):
    path, engine = database
    connection = engine.connect()
    connection.execute(text("UPDATE counter SET n = 5"))
    assert not turn_is_free(path)
    connection.close()  # the pool rolls the transaction back
    assert turn_is_free(path)


def test_reads_go_on_while_another_process_holds_the_turn(database):
    path, engine = database
    fd = os.open(f"{path}-writer", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        started = time.monotonic()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT n FROM counter")).scalar() == 0
        assert time.monotonic() - started < 1
    finally:
        os.close(fd)


def test_a_writer_waits_for_the_turn_and_goes_as_soon_as_it_is_free(database):
    path, engine = database
    fd = os.open(f"{path}-writer", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    done = []

    def write():
        with engine.begin() as connection:
            connection.execute(text("UPDATE counter SET n = n + 1"))
        done.append(time.monotonic())

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(0.5)
    assert not done
    freed = time.monotonic()
    os.close(fd)
    writer.join(10)
    assert done and done[0] - freed < 0.5


# Each process increments the counter in transactions that hold the write lock a while, from
# several threads, with SQLite's own busy handler switched off: any writer that did not wait
# for its turn would fail at once with "database is locked".
WRITER = textwrap.dedent(
    """
    import sys, threading, time
    from sqlalchemy import event, text
    from app.db import make_engine

    engine = make_engine("sqlite:///" + sys.argv[1])

    @event.listens_for(engine, "connect")
    def _no_busy_handler(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    errors = []

    def work():
        try:
            for _ in range(int(sys.argv[2])):
                with engine.begin() as connection:
                    n = connection.execute(text("SELECT n FROM counter")).scalar()
                    connection.execute(text("UPDATE counter SET n = n + 1"))
                    time.sleep(0.001)
                    connection.execute(text("UPDATE counter SET id = 1 WHERE n = :n"), {"n": n + 1})
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(4)]
    [thread.start() for thread in threads]
    [thread.join() for thread in threads]
    print(errors[:1])
    sys.exit(1 if errors else 0)
    """
)


def test_processes_and_threads_take_turns_without_sqlites_busy_handler(database):
    path, engine = database
    per_thread = 25
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(per_thread)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for writer in writers:
        output, _ = writer.communicate(timeout=120)
        assert writer.returncode == 0, output
    with engine.connect() as connection:
        assert connection.execute(text("SELECT n FROM counter")).scalar() == 3 * 4 * per_thread


def test_a_forked_child_takes_turns_of_its_own(tmp_path):
    # The turn alone: SQLite itself forbids carrying its connections across a fork.
    turn = WriterTurn(str(tmp_path / "pulse.db"))
    turn.acquire()
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            turn.acquire()  # neither the parent's lock nor its open file: it waits
            os.write(write_end, str(time.monotonic()).encode())
            turn.release()
        except BaseException as exc:
            os.write(write_end, repr(exc).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    time.sleep(0.5)
    released = time.monotonic()
    turn.release()
    report = os.read(read_end, 4096).decode()
    os.waitpid(child, 0)
    os.close(read_end)
    assert report[:1].isdigit(), f"the child could not take the turn: {report}"
    assert released <= float(report) < released + 5
    turn.acquire()  # and the parent's turn still works
    turn.release()


def test_engines_of_one_file_share_one_turn_in_a_process(tmp_path):
    first, second = make_engine(f"sqlite:///{tmp_path / 'pulse.db'}"), make_engine(f"sqlite:///{tmp_path / 'pulse.db'}")
    try:
        with first.connect() as one, second.connect() as other:
            assert type(one.connection.dbapi_connection).turn is type(other.connection.dbapi_connection).turn
    finally:
        first.dispose()
        second.dispose()
