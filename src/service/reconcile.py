"""The reconciler: release the targets of changes whose workflows closed without saying so.

A change row without an outcome holds its target for admission. The workflow writes the
outcome itself, except when it cannot: terminated, cancelled or failed from outside
changegate (the Temporal UI, `temporal workflow terminate`), or the audit store was down when
it ended. The reconciler asks Temporal about every such row and, for each closed workflow,
writes the outcome the workflow returned (or ABORTED) with a timeline line saying so.

Each row is written in its own transaction under the admission lock, after reading it again:
releasing a target is the inverse of admission taking it, and several workers (or an operator)
reconciling at once write each row once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ValidationError
from sqlmodel import Session
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from changegate.models import ChangeRequest, ChangeStatus, Outcome, Stage, TimelineEvent
from changegate.store import (
    ChangeRow,
    Store,
    active_changes,
    get_change,
    list_events,
    locked_session,
    record_events,
    record_findings,
    upsert_change,
)
from changegate.workflows import ChangeWorkflow

NOT_FOUND = "NOT_FOUND"
"""The workflow status of a row whose workflow Temporal does not know."""

_CONCURRENT_DESCRIBES = 16


class Repair(BaseModel):
    """One change row the reconciler released, or would release on a dry run."""

    change_id: str
    target_label: str
    agent_id: str
    workflow_status: str
    """Temporal's word on the workflow: TERMINATED, CANCELED, FAILED, TIMED_OUT, COMPLETED or
    NOT_FOUND."""
    outcome: Outcome
    """The outcome written: the workflow's own if it completed, else ABORTED."""
    written: bool
    """False on a dry run, when another reconciler released the row first, or on `error`."""
    error: str | None = None
    """Why the row could not be written: its stored request no longer validates."""


class ReconcileReport(BaseModel):
    """What one reconciler pass found and did."""

    dry_run: bool
    checked: int
    """Active change rows looked at."""
    repairs: list[Repair]
    seconds: float


async def reconcile(
    client: Client,
    store: Store,
    *,
    missing_grace: timedelta,
    dry_run: bool = False,
    actor: str = "reconciler",
) -> ReconcileReport:
    """Release every active change row whose workflow is closed; a report of what changed.

    A closed workflow cannot reopen, so it is released at once. A row whose workflow Temporal
    does not know may be a submission whose start is still in flight (admission writes the
    row first), so it is released only once older than `missing_grace`: admission's ticket
    lifetime is safe, as a workflow starting later is refused its ticket.
    """
    started = time.monotonic()
    rows = await asyncio.to_thread(_active_rows, store)
    limit = asyncio.Semaphore(_CONCURRENT_DESCRIBES)

    async def examine(row: ChangeRow) -> _Closed | None:
        async with limit:
            return await _closed(client, row, missing_grace=missing_grace)

    found = [f for f in await asyncio.gather(*(examine(row) for row in rows)) if f]
    repairs = []
    for closed in found:
        written, error = False, None
        try:
            written = not dry_run and await asyncio.to_thread(_release, store, closed, actor=actor)
        except ValidationError as exc:
            # One row the models no longer read must not keep every other target held.
            error = f"its stored request does not validate ({exc.error_count()} problem(s))"
        repairs.append(
            Repair(
                change_id=closed.row.change_id,
                target_label=closed.row.target_label,
                agent_id=closed.row.agent_id,
                workflow_status=closed.how,
                outcome=closed.outcome,
                written=written,
                error=error,
            )
        )
    return ReconcileReport(
        dry_run=dry_run,
        checked=len(rows),
        repairs=repairs,
        seconds=round(time.monotonic() - started, 3),
    )


def _active_rows(store: Store) -> list[ChangeRow]:
    with store.session() as session:
        return active_changes(session=session)


@dataclass(frozen=True)
class _Closed:
    """An active row whose workflow is closed: how, when, and its result if it completed."""

    row: ChangeRow
    how: str
    closed_at: datetime
    result: ChangeStatus | None = None

    @property
    def outcome(self) -> Outcome:
        """The workflow's own outcome if it returned one, else ABORTED."""
        if self.result is not None and self.result.outcome is not None:
            return self.result.outcome
        return Outcome.ABORTED


async def _closed(client: Client, row: ChangeRow, *, missing_grace: timedelta) -> _Closed | None:
    """How the row's workflow closed, or None while it runs (or may yet start)."""
    handle = client.get_workflow_handle_for(ChangeWorkflow.run, row.change_id)
    now = datetime.now(UTC)
    try:
        described = await handle.describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        if row.submitted_at > now - missing_grace:
            return None
        return _Closed(row, NOT_FOUND, now)
    status = described.status
    if status is None or status == WorkflowExecutionStatus.RUNNING:
        return None
    closed_at = described.close_time or now
    if status != WorkflowExecutionStatus.COMPLETED:
        return _Closed(row, status.name, closed_at)
    return _Closed(row, status.name, closed_at, await handle.result())


def _release(store: Store, closed: _Closed, *, actor: str) -> bool:
    """End the row and add the reconciler's timeline line; False if it had ended already."""
    change_id, result = closed.row.change_id, closed.result
    with locked_session(store) as session:
        current = get_change(session=session, change_id=change_id)
        if current is None or current.outcome is not None:
            return False
        # Never older than what is stored: upsert_change ignores writes that move backwards.
        at = max(closed.closed_at, current.updated_at)
        timeline: Sequence[TimelineEvent] = result.timeline if result else ()
        if result is not None:
            # The audit store catches up on whatever the workflow's own writes missed.
            record_events(session=session, change_id=change_id, events=list(enumerate(timeline)))
            record_findings(
                session=session, change_id=change_id, findings=list(enumerate(result.findings))
            )
        upsert_change(
            session=session,
            change_id=change_id,
            request=ChangeRequest.model_validate(current.request),
            stage=Stage.ENDED,
            outcome=closed.outcome,
            risk=result.risk.tier if result and result.risk else None,
            at=at,
        )
        line = TimelineEvent(
            at=at,
            stage=Stage.ENDED,
            kind="reconciled",
            message=f"reconciler: workflow {closed.how}; target released",
            actor=actor,
            data={"workflow_status": closed.how, "outcome": closed.outcome.value},
        )
        seq = _next_seq(session, change_id, len(timeline))
        record_events(session=session, change_id=change_id, events=[(seq, line)])
        return True


def _next_seq(session: Session, change_id: str, at_least: int) -> int:
    stored = list_events(session=session, change_id=change_id)
    return max([at_least, *(event.seq + 1 for event in stored)])
