"""Database locks that serialise read-then-write transactions across threads and processes.

Admission reads the store (active and recent changes, incidents, kill switches), judges, and
then inserts the change that reserves its target. Two submissions interleaving between the
read and the write would both be admitted, so the whole transaction runs under a lock held
by the database itself, never by one process:

- PostgreSQL: `pg_advisory_xact_lock(key)` as the transaction's first statement, released
  by the database at commit or rollback, or when a crashed holder's connection closes;
- SQLite: `BEGIN IMMEDIATE`, the file's single write lock, taken before the first read.

Both wait at most `BUSY_TIMEOUT_MS` for the lock, then raise `OperationalError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import sqlalchemy as sa
from sqlmodel import Session

from changegate.store.engine import BUSY_TIMEOUT_MS
from changegate.store.store import Store

ADMISSION_LOCK: Final = 0x6367_6164_6D69_7401
"""The advisory lock key of admission: one key for every rule, per-target, per-agent and
global alike, so no pair of keys can be taken in opposite orders. Advisory keys are shared
by the whole PostgreSQL database: stores in other schemas of it queue on the same key."""


@contextmanager
def locked_session(store: Store, *, key: int = ADMISSION_LOCK) -> Iterator[Session]:
    """A `store.session()` transaction that holds the database lock `key` from its start."""
    with store.session() as session:
        connection = session.connection()
        dialect = connection.dialect.name
        if dialect == "postgresql":
            # Under READ COMMITTED (the default) each later statement takes a new snapshot,
            # so it sees what the previous holder committed before releasing the lock.
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = {BUSY_TIMEOUT_MS}")
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
        elif dialect == "sqlite":
            # pysqlite opens its own (deferred) transaction only before the first INSERT,
            # UPDATE or DELETE, so reads would run unlocked. It leaves a transaction begun
            # by hand alone and commits or rolls it back as its own; the busy timeout of
            # the connection applies while BEGIN IMMEDIATE waits for the write lock.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            raise ValueError(f"the audit store runs on sqlite or postgresql, not {dialect}")
        yield session
