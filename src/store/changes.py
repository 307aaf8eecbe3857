"""Repository functions for changes: record where each is, and find recent and active ones."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from changegate.models import ChangeRequest, Outcome, RiskLevel, Stage
from changegate.store.fingerprint import fingerprint
from changegate.store.tables import ChangeRow, table_of
from changegate.store.upsert import dialect_insert


def upsert_change(
    *,
    session: Session,
    change_id: str,
    request: ChangeRequest,
    stage: Stage,
    outcome: Outcome | None = None,
    risk: RiskLevel | None = None,
    at: datetime,
) -> None:
    """Record a change at `stage` as of `at`; a write older than the stored one is ignored.

    Once set, the outcome, risk and end time are kept: a later write without them does not
    clear them. The request is stored as given, so the caller redacts it first.
    """
    table = table_of(ChangeRow)
    insert = dialect_insert(session=session, table=table).values(
        change_id=change_id,
        agent_id=request.agent.agent_id,
        target_label=request.target.label(),
        operation=request.change.operation,
        fingerprint=fingerprint(request),
        request=request.model_dump(mode="json"),
        stage=stage.value,
        outcome=None if outcome is None else outcome.value,
        risk=risk,
        submitted_at=at,
        updated_at=at,
        ended_at=None if outcome is None else at,
    )
    new = insert.excluded
    statement = insert.on_conflict_do_update(
        index_elements=["change_id"],
        set_={
            "stage": new.stage,
            "outcome": sa.func.coalesce(table.c.outcome, new.outcome),
            "risk": sa.func.coalesce(new.risk, table.c.risk),
            "updated_at": new.updated_at,
            "ended_at": sa.func.coalesce(table.c.ended_at, new.ended_at),
        },
        # Retried or reordered activity writes must not move a change backwards.
        where=table.c.updated_at <= new.updated_at,
    )
    session.exec(statement)


def advance_change(
    *,
    session: Session,
    change_id: str,
    stage: Stage,
    outcome: Outcome | None = None,
    risk: RiskLevel | None = None,
    at: datetime,
) -> bool:
    """Move a stored change to `stage` as of `at`, keeping what `upsert_change` keeps.

    False when no row with that id exists (the caller then needs `upsert_change`).
    """
    table = table_of(ChangeRow)
    statement = (
        sa.update(table)
        .where(table.c.change_id == change_id, table.c.updated_at <= at)
        .values(
            stage=stage.value,
            outcome=sa.func.coalesce(table.c.outcome, None if outcome is None else outcome.value),
            risk=sa.func.coalesce(risk, table.c.risk),
            updated_at=at,
            ended_at=sa.func.coalesce(table.c.ended_at, None if outcome is None else at),
        )
    )
    session.exec(statement)
    return get_change(session=session, change_id=change_id) is not None


def get_change(*, session: Session, change_id: str) -> ChangeRow | None:
    """The stored change with this id, if any."""
    return session.get(ChangeRow, change_id)


def _filters(
    *,
    agent_id: str | None,
    target_label: str | None,
    since: datetime | None,
) -> list[sa.ColumnElement[bool]]:
    clauses: list[sa.ColumnElement[bool]] = []
    if agent_id is not None:
        clauses.append(col(ChangeRow.agent_id) == agent_id)
    if target_label is not None:
        clauses.append(col(ChangeRow.target_label) == target_label)
    if since is not None:
        clauses.append(col(ChangeRow.submitted_at) >= since)
    return clauses


def recent_changes(
    *,
    session: Session,
    agent_id: str | None = None,
    target_label: str | None = None,
    since: datetime | None = None,
    fingerprint: str | None = None,
    limit: int | None = None,
) -> list[ChangeRow]:
    """Changes submitted at or after `since`, newest first, filtered by whatever is given."""
    clauses = _filters(agent_id=agent_id, target_label=target_label, since=since)
    if fingerprint is not None:
        clauses.append(col(ChangeRow.fingerprint) == fingerprint)
    statement = (
        select(ChangeRow)
        .where(*clauses)
        .order_by(col(ChangeRow.submitted_at).desc(), col(ChangeRow.change_id).desc())
        .limit(limit)
    )
    return list(session.exec(statement))


def active_changes(
    *,
    session: Session,
    target_label: str | None = None,
    agent_id: str | None = None,
    target_labels: Collection[str] | None = None,
) -> list[ChangeRow]:
    """Changes without an outcome yet, oldest first; on `target_labels` only, if given."""
    clauses = _filters(agent_id=agent_id, target_label=target_label, since=None)
    if target_labels is not None:
        clauses.append(col(ChangeRow.target_label).in_(sorted(target_labels)))
    statement = (
        select(ChangeRow)
        .where(col(ChangeRow.outcome).is_(None), *clauses)
        .order_by(col(ChangeRow.submitted_at), col(ChangeRow.change_id))
    )
    return list(session.exec(statement))


def changes_count(
    *,
    session: Session,
    agent_id: str | None = None,
    target_label: str | None = None,
    since: datetime | None = None,
) -> int:
    """How many changes match: the number a rate limit compares with its budget."""
    clauses = _filters(agent_id=agent_id, target_label=target_label, since=since)
    statement = select(func.count()).select_from(ChangeRow).where(*clauses)
    return session.exec(statement).one()


def admission_history(
    *,
    session: Session,
    agent_id: str,
    target_label: str,
    fingerprint: str,
    since: datetime,
    agent_since: datetime,
    in_flight_limit: int | None,
    per_hour_limit: int | None,
) -> list[ChangeRow]:
    """The changes admission's rules read for one request, each by an indexed query.

    On its target: those submitted at or after `since` and those still running. With its
    fingerprint: those submitted at or after `since`. Of its agent, whose running changes
    and changes since `agent_since` the rules only count against a limit: nothing while
    there are fewer than the limit, else as many as the limit (its newest), which is all a
    refusal names. So the cost does not grow with the agent's changes in flight, nor with
    anybody else's.
    """
    recent_or_running = sa.or_(
        col(ChangeRow.submitted_at) >= since, col(ChangeRow.outcome).is_(None)
    )
    statements = [
        select(ChangeRow).where(col(ChangeRow.target_label) == target_label, recent_or_running),
        select(ChangeRow).where(
            col(ChangeRow.fingerprint) == fingerprint, col(ChangeRow.submitted_at) >= since
        ),
    ]
    mine = col(ChangeRow.agent_id) == agent_id
    for limit, clause in (
        (in_flight_limit, col(ChangeRow.outcome).is_(None)),
        (per_hour_limit, col(ChangeRow.submitted_at) >= agent_since),
    ):
        if limit is None:
            continue
        count = session.exec(select(func.count()).select_from(ChangeRow).where(mine, clause))
        if count.one() >= limit:
            statements.append(
                select(ChangeRow)
                .where(mine, clause)
                .order_by(col(ChangeRow.submitted_at).desc())
                .limit(limit)
            )
    rows: dict[str, ChangeRow] = {}
    for statement in statements:
        for row in session.exec(statement):
            rows[row.change_id] = row
    return list(rows.values())
