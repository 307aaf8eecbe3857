"""Repository functions for admission refusals: which rule refused what, and what would pass."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from changegate.models import ChangeRequest
from changegate.store.fingerprint import fingerprint
from changegate.store.tables import RefusalRow, table_of
from changegate.store.upsert import insert_missing


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
