"""Repository functions for a change's history: timeline events, findings and decisions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from sqlmodel import Session, col, select

from changegate.models import Decision, Finding, TimelineEvent
from changegate.store.tables import DecisionRow, EventRow, FindingRow, table_of
from changegate.store.upsert import insert_missing

DecisionVerdict = Literal["approve", "reject", "refused"]
"""What became of an approver's answer: an approval, a rejection, or refused by policy."""

_KEYS = ("change_id", "seq")


def record_events(
    *, session: Session, change_id: str, events: Sequence[tuple[int, TimelineEvent]]
) -> None:
    """Store timeline events by their index; indexes already stored are left as they are."""
    rows = [
        {
            "change_id": change_id,
            "seq": seq,
            "at": event.at,
            "stage": event.stage.value,
            "kind": event.kind,
            "message": event.message,
            "actor": event.actor,
            "data": event.data,
        }
        for seq, event in events
    ]
    insert_missing(session=session, table=table_of(EventRow), rows=rows, keys=_KEYS)


def record_findings(
    *, session: Session, change_id: str, findings: Sequence[tuple[int, Finding]]
) -> None:
    """Store validation findings by their index in the report; repeats are ignored."""
    rows = [
        {
            "change_id": change_id,
            "seq": seq,
            "code": finding.code,
            "severity": finding.severity,
            "message": finding.message,
            "path": finding.path,
            "expected": finding.expected,
            "actual": finding.actual,
        }
        for seq, finding in findings
    ]
    insert_missing(session=session, table=table_of(FindingRow), rows=rows, keys=_KEYS)


def record_decision(
    *,
    session: Session,
    change_id: str,
    seq: int,
    decision: Decision,
    verdict: DecisionVerdict,
    counted: bool,
    at: datetime,
) -> None:
    """Store the `seq`-th answer an approver gave, and whether it counted; repeats are ignored."""
    row = {
        "change_id": change_id,
        "seq": seq,
        "actor": decision.actor,
        "verdict": verdict,
        "reason": decision.reason,
        "counted": counted,
        "at": at,
    }
    insert_missing(session=session, table=table_of(DecisionRow), rows=[row], keys=_KEYS)


def list_events(*, session: Session, change_id: str) -> list[EventRow]:
    """A change's stored timeline, in order."""
    statement = select(EventRow).where(EventRow.change_id == change_id).order_by(col(EventRow.seq))
    return list(session.exec(statement))


def list_findings(*, session: Session, change_id: str) -> list[FindingRow]:
    """A change's stored findings, in report order."""
    statement = (
        select(FindingRow).where(FindingRow.change_id == change_id).order_by(col(FindingRow.seq))
    )
    return list(session.exec(statement))


def list_decisions(*, session: Session, change_id: str) -> list[DecisionRow]:
    """A change's stored decisions, in the order they arrived."""
    statement = (
        select(DecisionRow).where(DecisionRow.change_id == change_id).order_by(col(DecisionRow.seq))
    )
    return list(session.exec(statement))
