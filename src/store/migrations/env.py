"""Alembic environment: migrates the connection `migrate` hands over, or one built from the URL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection

from changegate.store.engine import create_engine_for
from changegate.store.tables import metadata

# Workers starting together must not race to create the schema; any constant key will do.
_MIGRATION_LOCK = 0x6367_7374_6F72


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        _lock(connection)
        context.run_migrations()


def _lock(connection: Connection) -> None:
    """Hold the database's write lock from before the version is read until commit."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        return
    # pysqlite opens no transaction before DDL; an immediate one makes the upgrade atomic
    # and makes a second process wait for the first instead of creating tables twice.
    driver = connection.connection.dbapi_connection
    if connection.dialect.name == "sqlite" and not getattr(driver, "in_transaction", True):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _run_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("no connection and no sqlalchemy.url to migrate")
    engine = create_engine_for(url)
    try:
        with engine.connect() as owned:
            _configure(owned)
            owned.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
