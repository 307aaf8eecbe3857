"""Audit writes: every change's record in the store, and an incident when one is needed.

Each write is idempotent: events, findings and decisions are keyed by the change id and
their index, so a retried activity never duplicates a row.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlmodel import Session
from temporalio import activity

from changegate.activities.heartbeat import heartbeats
from changegate.incidents import build_incident, needs_incident
from changegate.models import (
    AuditInput,
    AuditReceipt,
    CloseInput,
    CloseReceipt,
    Decision,
    DecisionRecord,
    Outcome,
    Stage,
)
from changegate.store import (
    IncidentRecord,
    Store,
    advance_change,
    open_incident,
    record_decision,
    record_events,
    record_findings,
    upsert_change,
)


class AuditActivities:
    """Writes the change's record and its incident to the audit store."""

    def __init__(self, store: Store) -> None:
        """Write to `store`."""
        self._store = store

    @activity.defn(name="record_change")
    @heartbeats
    async def record_change(self, data: AuditInput) -> AuditReceipt:
        """Store the change's stage and whatever timeline and findings are new."""
        await asyncio.to_thread(self._record, data)
        return AuditReceipt(recorded_through=data.first_seq + len(data.events))

    @activity.defn(name="close_change")
    @heartbeats
    async def close_change(self, data: CloseInput) -> CloseReceipt:
        """Open the incident an ended change needs (once), returning its id."""
        if not needs_incident(data.status):
            return CloseReceipt()
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
        return CloseReceipt(incident_id=incident.incident_id)

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
