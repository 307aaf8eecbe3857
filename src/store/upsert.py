"""INSERT ... ON CONFLICT for SQLite and PostgreSQL: how every write stays idempotent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

_Insert = sqlite.Insert | postgresql.Insert


def dialect_insert(*, session: Session, table: sa.Table) -> _Insert:
    """An INSERT for `table` that understands ON CONFLICT on the session's database."""
    name = session.get_bind().dialect.name
    if name == "sqlite":
        return sqlite.insert(table)
    if name == "postgresql":
        return postgresql.insert(table)
    raise ValueError(f"the audit store runs on sqlite or postgresql, not {name}")


def insert_missing(
    *,
    session: Session,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
) -> None:
    """Insert the rows whose `keys` are not in the table yet; existing rows stay untouched."""
    if not rows:
        return
    statement = dialect_insert(session=session, table=table).on_conflict_do_nothing(
        index_elements=list(keys)
    )
    session.exec(statement, params=[dict(row) for row in rows])


def upsert(
    *,
    session: Session,
    table: sa.Table,
    row: Mapping[str, Any],
    keys: Sequence[str],
    update: Mapping[str, Any],
    where: sa.ColumnElement[bool] | None = None,
) -> None:
    """Insert `row`, or apply `update` to the row with the same `keys` (only if `where`)."""
    insert = dialect_insert(session=session, table=table).values(dict(row))
    statement = insert.on_conflict_do_update(
        index_elements=list(keys), set_=dict(update), where=where
    )
    session.exec(statement)
