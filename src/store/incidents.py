"""Repository functions for incidents: one per rolled-back change, open until closed."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, model_validator
from sqlmodel import Session, col, select

from changegate.store.tables import IncidentBase, IncidentRow, table_of
from changegate.store.upsert import insert_missing


class IncidentRecord(IncidentBase):
    """An incident as written and read: `incident_id` defaults to `inc-<change_id>`."""

    # Like every contract, refuse unknown fields; sqlmodel types its config more narrowly.
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
    incident_id: str = ""

    @model_validator(mode="after")
    def _default_id(self) -> IncidentRecord:
        if not self.incident_id:
            self.incident_id = f"inc-{self.change_id}"
        return self


def _record(row: IncidentRow) -> IncidentRecord:
    return IncidentRecord.model_validate(row, from_attributes=True)


def open_incident(*, session: Session, incident: IncidentRecord) -> IncidentRecord:
    """Store an incident unless its change has one already; returns the stored incident."""
    insert_missing(
        session=session,
        table=table_of(IncidentRow),
        rows=[incident.model_dump(mode="python")],
        keys=["change_id"],
    )
    statement = select(IncidentRow).where(IncidentRow.change_id == incident.change_id)
    return _record(session.exec(statement).one())


def get_incident(*, session: Session, incident_id: str) -> IncidentRecord | None:
    """The incident with this id, if any."""
    row = session.get(IncidentRow, incident_id)
    return None if row is None else _record(row)


def list_incidents(
    *, session: Session, open_only: bool = False, target: str | None = None
) -> list[IncidentRecord]:
    """Incidents, newest first; only open ones, or only one target's, when asked."""
    statement = select(IncidentRow)
    if open_only:
        statement = statement.where(col(IncidentRow.closed_at).is_(None))
    if target is not None:
        statement = statement.where(IncidentRow.target_label == target)
    statement = statement.order_by(
        col(IncidentRow.opened_at).desc(), col(IncidentRow.incident_id).desc()
    )
    return [_record(row) for row in session.exec(statement)]


def close_incident(*, session: Session, incident_id: str, at: datetime) -> IncidentRecord | None:
    """Close an incident at `at`; closing a closed one keeps its first close time."""
    row = session.get(IncidentRow, incident_id)
    if row is None:
        return None
    if row.closed_at is None:
        row.closed_at = at
        session.add(row)
        session.flush()
    return _record(row)


def open_incident_targets(*, session: Session) -> set[str]:
    """Labels of the targets that have an open incident; validation warns about them."""
    statement = select(IncidentRow.target_label).where(col(IncidentRow.closed_at).is_(None))
    return set(session.exec(statement))
