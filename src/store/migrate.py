"""Schema migrations: Alembic, configured in code, revisions shipped in the package."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from changegate.store.engine import create_engine_for

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(*, url: str | None = None) -> Config:
    """An Alembic config for the shipped revisions; no alembic.ini is read."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, *, revision: str = "head") -> None:
    """Upgrade the database behind `engine` to `revision`, in one transaction."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


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
