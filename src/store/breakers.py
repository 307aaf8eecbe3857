"""Repository functions for circuit breakers: trips, their release, and what triggers read.

A trip is written together with its effects in the caller's transaction (`open_breaker`):
the trip row, the agent's kill switch (pause or abort) and the incident, so a reader never
sees one without the others.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from changegate.models import KillSwitchScope
from changegate.store.incidents import IncidentRecord, open_incident
from changegate.store.kill_switches import KillMode, set_kill_switch
from changegate.store.tables import BreakerTripRow, ChangeRow, EventRow, RefusalRow, table_of
from changegate.store.upsert import insert_missing

__all__ = [
    "BREAKER_ACTOR",
    "applied_units",
    "changes_of",
    "last_release",
    "list_trips",
    "open_breaker",
    "refusals_of",
    "release_breakers",
]

BREAKER_ACTOR = "breaker"
"""The actor a trip's kill switch names: no person engaged it."""


def open_breaker(
    *,
    session: Session,
    trip: dict[str, Any],
    incident: IncidentRecord,
    mode: KillMode | None,
) -> bool:
    """Store a trip (keys of `BreakerTripRow`) with its incident and, unless `mode` is None
    (a throttle), engage the agent's kill switch in `mode`; False when it was stored before.
    """
    if session.get(BreakerTripRow, trip["trip_id"]) is not None:
        return False
    insert_missing(
        session=session,
        table=table_of(BreakerTripRow),
        rows=[{**trip, "incident_id": incident.incident_id}],
        keys=["trip_id"],
    )
    open_incident(session=session, incident=incident)
    if mode is not None:
        set_kill_switch(
            session=session,
            scope=KillSwitchScope.for_agent(trip["agent_id"]),
            mode=mode,
            engaged=True,
            actor=BREAKER_ACTOR,
            reason=f"breaker {trip['breaker']} tripped ({trip['trip_id']}): {trip['reason']}",
            at=trip["at"],
        )
    return True


def list_trips(
    *,
    session: Session,
    agent_id: str | None = None,
    open_only: bool = False,
    since: datetime | None = None,
) -> list[BreakerTripRow]:
    """Trips, oldest first; of one agent, only unreleased ones, or since a time when asked."""
    statement = select(BreakerTripRow)
    if agent_id is not None:
        statement = statement.where(BreakerTripRow.agent_id == agent_id)
    if open_only:
        statement = statement.where(col(BreakerTripRow.released_at).is_(None))
    if since is not None:
        statement = statement.where(col(BreakerTripRow.at) >= since)
    return list(
        session.exec(statement.order_by(col(BreakerTripRow.at), col(BreakerTripRow.trip_id)))
    )


def release_breakers(
    *, session: Session, agent_id: str, actor: str, reason: str, at: datetime
) -> list[BreakerTripRow]:
    """Release every open trip of the agent, recording who, why and when; the released."""
    released = list_trips(session=session, agent_id=agent_id, open_only=True)
    for row in released:
        row.released_at = at
        row.released_by = actor
        row.release_reason = reason
        session.add(row)
    session.flush()
    return released


def last_release(*, session: Session, agent_id: str) -> datetime | None:
    """When a person last released the agent's breakers, if ever."""
    statement = select(sa.func.max(BreakerTripRow.released_at)).where(
        BreakerTripRow.agent_id == agent_id
    )
    found: datetime | None = session.exec(statement).one()
    return found


def refusals_of(*, session: Session, agent_id: str, since: datetime) -> list[RefusalRow]:
    """The agent's refusals since `since`, oldest first."""
    statement = (
        select(RefusalRow)
        .where(RefusalRow.agent_id == agent_id, col(RefusalRow.at) > since)
        .order_by(col(RefusalRow.at), col(RefusalRow.id))
    )
    return list(session.exec(statement))


def changes_of(*, session: Session, agent_id: str, since: datetime) -> list[ChangeRow]:
    """The agent's changes submitted or ended since `since`, oldest first."""
    statement = (
        select(ChangeRow)
        .where(
            ChangeRow.agent_id == agent_id,
            sa.or_(col(ChangeRow.submitted_at) > since, col(ChangeRow.ended_at) > since),
        )
        .order_by(col(ChangeRow.submitted_at), col(ChangeRow.change_id))
    )
    return list(session.exec(statement))


def applied_units(*, session: Session, change_ids: list[str]) -> dict[str, int]:
    """How many units each change applied, from its recorded `applied` events."""
    if not change_ids:
        return {}
    statement = (
        select(EventRow.change_id, sa.func.count())
        .where(col(EventRow.change_id).in_(change_ids), EventRow.kind == "applied")
        .group_by(col(EventRow.change_id))
    )
    return {change_id: count for change_id, count in session.exec(statement)}
