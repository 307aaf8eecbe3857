"""Audit writes: every change's record in the store, and an incident when one is needed.

Each write is idempotent: events, findings and decisions are keyed by the change id and
their index, so a retried activity never duplicates a row.

`close_change` also judges the agent's outcome breakers (`units_per_day`, `failed_changes`,
`rollbacks_in_a_row`) under the admission lock, on the store with this change's outcome
written, and hands a trip to `on_trip`, which holds the agent's in-flight changes. A trip is
named after the change that closed (`brk-<change_id>`), so a retry holds the same one again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Protocol

from sqlmodel import Session
from temporalio import activity

from changegate.activities.heartbeat import heartbeats
from changegate.admission.breakers import trip_breaker
from changegate.incidents import build_incident, needs_incident
from changegate.models import (
    AuditInput,
    AuditReceipt,
    ChangeStatus,
    CloseInput,
    CloseReceipt,
    Decision,
    DecisionRecord,
    Outcome,
    Stage,
)
from changegate.policy import Policy
from changegate.policy.breakers import OUTCOME_TRIGGERS, Trip
from changegate.store import (
    BreakerTripRow,
    IncidentRecord,
    Store,
    advance_change,
    locked_session,
    open_incident,
    record_decision,
    record_events,
    record_findings,
    upsert_change,
)


class TripHook(Protocol):
    """What holds an agent's in-flight changes once its breaker trips; `closing` is the
    change whose outcome tripped it (ending, so not to be held)."""

    def __call__(self, trip: Trip, *, closing: str | None = None) -> Awaitable[object]:
        """Hold what `trip` says."""
        ...


class AuditActivities:
    """Writes the change's record and its incident to the audit store."""

    def __init__(
        self, store: Store, *, policy: Policy | None = None, on_trip: TripHook | None = None
    ) -> None:
        """Write to `store`; judge `policy`'s outcome breakers and tell `on_trip` of a trip."""
        self._store = store
        self._policy = policy
        self._on_trip = on_trip

    @activity.defn(name="record_change")
    @heartbeats
    async def record_change(self, data: AuditInput) -> AuditReceipt:
        """Store the change's stage and whatever timeline and findings are new."""
        await asyncio.to_thread(self._record, data)
        return AuditReceipt(recorded_through=data.first_seq + len(data.events))

    @activity.defn(name="close_change")
    @heartbeats
    async def close_change(self, data: CloseInput) -> CloseReceipt:
        """Store the rest of the record (when given), open the incident an ended change
        needs (once) and judge the agent's outcome breakers."""
        through = None
        if data.audit is not None:
            await asyncio.to_thread(self._record, data.audit)
            through = data.audit.first_seq + len(data.audit.events)
        trip = await asyncio.to_thread(self._judge_outcome, data.status)
        if trip is not None and self._on_trip is not None:
            await self._on_trip(trip, closing=data.status.change_id)
        if not needs_incident(data.status):
            return CloseReceipt(recorded_through=through)
        incident = build_incident(data.status)
        record = IncidentRecord(
            incident_id=incident.incident_id,
            change_id=incident.change_id,
            category=incident.category.value,
            severity=incident.severity.value,
            opened_at=incident.opened_at,
            target_label=incident.target_label,
            agent_id=incident.agent_id,
            title=incident.title,
            review_markdown=incident.review_markdown,
            data={
                "units_touched": incident.units_touched,
                "restored": incident.restored,
                "suggestion": incident.suggestion,
            },
        )
        await asyncio.to_thread(self._open, record)
        return CloseReceipt(incident_id=incident.incident_id, recorded_through=through)

    def _judge_outcome(self, status: ChangeStatus) -> Trip | None:
        agent_id = status.request.agent.agent_id
        if self._policy is None or self._policy.breakers_for(agent_id) is None:
            return None
        if status.outcome is None or not status.timeline:
            return None
        trip_id = f"brk-{status.change_id}"
        with locked_session(self._store) as session:
            earlier = session.get(BreakerTripRow, trip_id)
            if earlier is not None:
                # A retry: hold again what this close tripped, unless a person released it.
                open_ = earlier.released_at is None
                return Trip.model_validate(earlier, from_attributes=True) if open_ else None
            # The pump may not have written the end yet: the triggers must count it.
            record_events(
                session=session,
                change_id=status.change_id,
                events=list(enumerate(status.timeline)),
            )
            advance_change(
                session=session,
                change_id=status.change_id,
                stage=Stage.ENDED,
                outcome=status.outcome,
                at=status.timeline[-1].at,
            )
            return trip_breaker(
                session=session,
                policy=self._policy,
                agent_id=agent_id,
                triggers=OUTCOME_TRIGGERS,
                now=datetime.now(UTC),
                trip_id=trip_id,
            )

    def _open(self, record: IncidentRecord) -> None:
        with self._store.session() as session:
            open_incident(session=session, incident=record)

    def _record(self, data: AuditInput) -> None:
        at = data.events[-1].at if data.events else datetime.now(UTC)
        indexed = list(enumerate(data.events, start=data.first_seq))
        stage = Stage(data.stage)
        outcome = Outcome(data.outcome) if data.outcome else None
        risk = data.risk
        with self._store.session() as session:
            if data.request is not None:
                upsert_change(
                    session=session,
                    change_id=data.change_id,
                    request=data.request,
                    stage=stage,
                    outcome=outcome,
                    risk=risk,
                    at=at,
                )
            else:
                advance_change(
                    session=session,
                    change_id=data.change_id,
                    stage=stage,
                    outcome=outcome,
                    risk=risk,
                    at=at,
                )
            record_events(session=session, change_id=data.change_id, events=indexed)
            record_findings(
                session=session, change_id=data.change_id, findings=list(enumerate(data.findings))
            )
            for record in data.decisions:
                _record_decision(session, data.change_id, record)


def _record_decision(session: Session, change_id: str, record: DecisionRecord) -> None:
    """The decision as judged: the signed principal (or the unauthenticated claim), its own
    reason, and whether it counted."""
    who = record.principal or f"{record.claimed} (unauthenticated)"
    record_decision(
        session=session,
        change_id=change_id,
        seq=record.seq,
        decision=Decision(actor=who, reason=record.reason),
        verdict=record.verdict if record.counted else "refused",
        counted=record.counted,
        at=record.at,
    )
