"""Repository functions for refusals, admission's and the API's: which rule refused what, why."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from changegate.models import ChangeRequest
from changegate.store.fingerprint import fingerprint
from changegate.store.tables import RefusalRow, table_of
from changegate.store.upsert import insert_missing

__all__ = ["add_refusal", "count_refusal", "list_refusals", "record_refusal"]


def record_refusal(
    *,
    session: Session,
    request: ChangeRequest,
    rule: str,
    reason: str,
    would_pass: str = "",
    at: datetime,
) -> None:
    """Store a refused submission; the same refusal at the same instant is stored once."""
    row = {
        "at": at,
        "agent_id": request.agent.agent_id,
        "target_label": request.target.label(),
        "rule": rule,
        "reason": reason,
        "would_pass": would_pass,
        "fingerprint": fingerprint(request),
        "request": request.model_dump(mode="json"),
    }
    insert_missing(
        session=session,
        table=table_of(RefusalRow),
        rows=[row],
        keys=["at", "agent_id", "fingerprint", "rule"],
    )


def list_refusals(
    *,
    session: Session,
    agent_id: str | None = None,
    since: datetime | None = None,
) -> list[RefusalRow]:
    """Refusals, newest first, of one agent or since a time when asked."""
    statement = select(RefusalRow)
    if agent_id is not None:
        statement = statement.where(RefusalRow.agent_id == agent_id)
    if since is not None:
        statement = statement.where(col(RefusalRow.at) >= since)
    statement = statement.order_by(col(RefusalRow.at).desc(), col(RefusalRow.id).desc())
    return list(session.exec(statement))


def add_refusal(*, session: Session, row: RefusalRow) -> int:
    """Store a refusal row as given (the API's refused calls); returns its id."""
    session.add(row)
    session.flush()
    assert row.id is not None
    return row.id


def count_refusal(*, session: Session, refusal_id: int, count: int, last_at: datetime) -> bool:
    """Set how often a stored refusal happened and when last; False when the row is gone."""
    row = session.get(RefusalRow, refusal_id)
    if row is None:
        return False
    # A new dict, not an edit in place: the JSON column only sees an assignment as a change.
    row.request = {**row.request, "count": count, "last_at": last_at.isoformat()}
    return True
