"""A PostgreSQL server of a test's own (initdb + pg_ctl on a free port), to stop and start at will.

The machine's PostgreSQL serves the rest of the suite; a test that takes the database away
from a running worker needs one nobody else uses. PostgreSQL refuses to run as root, so as
root the server runs as the `postgres` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import sqlalchemy

from tests.support import ROOT, free_port


def _binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise AssertionError(f"{name} not found: install PostgreSQL's server package (postgresql)")
    return found


class ThrowawayPostgres:
    """One PostgreSQL server in a directory under .tmp/, removed when it is closed."""

    def __init__(self):
        self.directory = ROOT / ".tmp" / f"pg-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as_postgres, *command], check=True, capture_output=True, timeout=60)

    def create(self) -> "ThrowawayPostgres":
        self.directory.mkdir(parents=True)
        if self._as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(_binary("initdb"), "-D", str(self.directory / "data"), "-A", "trust", "-U", "postgres")
        self.start()
        return self

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.directory}"
        self._run(_binary("pg_ctl"), "-D", str(self.directory / "data"), "-o", options, "-l", str(self.directory / "log"), "-w", "start")

    def stop(self) -> None:
        self._run(_binary("pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        engine = sqlalchemy.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        engine.dispose()
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.directory, ignore_errors=True)


def migrated(url: str) -> str:
    """`url` brought to the head migration."""
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=Path(ROOT),
        env={**os.environ, "DATABASE_URL": url, "MIGRATION_DATABASE_URL": url},
        check=True,
        capture_output=True,
    )
    return url
