"""Engines for the audit store: SQLite by file path, PostgreSQL by URL."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

# URLs without a driver name mean the driver the project ships: psycopg 3.
_POSTGRES_ALIASES = {"postgres", "postgresql"}
# How long a write waits for another's lock (SQLite's busy timeout, PostgreSQL's lock_timeout).
BUSY_TIMEOUT_MS = 10_000


def database_url(location: str | os.PathLike[str]) -> URL:
    """A SQLAlchemy URL from a URL, or from a file path meaning a SQLite database there."""
    text = os.fspath(location)
    if "://" not in text:
        return URL.create("sqlite", database=str(Path(text).expanduser().resolve()))
    url = make_url(text)
    if url.drivername in _POSTGRES_ALIASES:
        url = url.set(drivername="postgresql+psycopg")
    return url


def create_engine_for(location: str | os.PathLike[str]) -> Engine:
    """An engine for a store URL or SQLite path; SQLite gets WAL and foreign keys."""
    url = database_url(location)
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    # Activities run in worker threads; the pool still hands a connection to one at a time.
    engine = sa.create_engine(url, connect_args={"check_same_thread": False})
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _use_wal(cursor: Any) -> None:
    # WAL persists in the file, so only the first connection ever switches. The switch needs
    # the file to itself and SQLite reports a busy file at once, without its busy timeout.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while cursor.execute("PRAGMA journal_mode").fetchone()[0] not in ("wal", "memory"):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
