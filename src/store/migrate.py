"""Schema migrations: Alembic, configured in code, revisions shipped in the package."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from changegate.store.engine import create_engine_for

MIGRATIONS = Path(__file__).with_name("migrations")
# Alembic keeps its migration context in module globals: one upgrade at a time per process.
_IN_PROCESS = threading.Lock()
# Any fixed key: PostgreSQL advisory locks are per database.
_MIGRATION_LOCK_KEY = 0x6367_6D69  # "cgmi"


def alembic_config(*, url: str | None = None) -> Config:
    """An Alembic config for the shipped revisions; no alembic.ini is read."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, *, revision: str = "head") -> None:
    """Upgrade the database behind `engine` to `revision`, in one transaction.

    Safe to call from many threads and processes at once: one upgrades, the others wait and
    then find nothing left to do.
    """
    config = alembic_config()
    with _IN_PROCESS, _across_processes(engine), engine.begin() as connection:
        _lock_database(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@contextmanager
def _across_processes(engine: Engine) -> Iterator[None]:
    """A file lock beside a SQLite database (PostgreSQL locks inside the transaction)."""
    database = engine.url.database
    if engine.url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        yield
        return
    path = Path(database).with_name(Path(database).name + ".migrate.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_database(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
        )


def migrate(url: str | os.PathLike[str]) -> None:
    """Upgrade the store at `url` (or SQLite path) to the newest schema; safe to repeat."""
    engine = create_engine_for(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision shipped with this version of changegate."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
