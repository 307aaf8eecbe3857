"""The audit trail: the store hears of the change at the moments that matter, in the background.

The workflow's ledger is the source of truth. The store is written when the change waits
for a human (AWAITING_APPROVAL, or held by a pause), when it starts rolling back, and at
the end; every other stage and event rides along with the next of those writes, in one
batch. Writes wait out a store outage (no attempt limit) and are idempotent by event index,
so the store ends equal to the ledger and never fails or stalls a stage. The outcome is
published together with its incident.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from changegate.incidents.classify import incident_id_for, needs_incident
    from changegate.models import ChangeStatus, CloseInput, Outcome, Stage
    from changegate.workflows.ledger import Ledger
    from changegate.workflows.steps import Steps

# Stages a reader of the store must see without waiting for the end.
_MOMENTS = frozenset({Stage.AWAITING_APPROVAL, Stage.ROLLBACK})
# Events that hold or stop a change: a human may look for them in the store at once.
_HELD = frozenset({"paused", "abort"})


class AuditTrail:
    """Keeps the audit store in step with the ledger until the change is closed."""

    def __init__(self, ledger: Ledger, steps: Steps) -> None:
        """Write `ledger`'s record through `steps`."""
        self._ledger = ledger
        self._steps = steps
        self._closed = False
        self._pump: asyncio.Task[None] | None = None
        self._through = 0
        self._at_moments = True
        self._in_one = True
        self._ended: ChangeStatus | None = None

    def start(self, *, in_one: bool) -> None:
        """Begin writing in the background.

        Changes started before writes were batched at these moments keep writing at every
        stage and decision (`Ledger.behind`), so their histories replay as they ran. With
        `in_one`, the end is one write: the rest of the record, the incident and the
        breakers' judgement; before, the incident was opened first and the record followed.
        """
        self._at_moments = workflow.patched("audit-at-moments")
        self._in_one = in_one
        self._pump = asyncio.create_task(self._run())

    async def close(self, outcome: Outcome, message: str) -> None:
        """Publish the outcome with its incident's id, then let the store catch up with the
        whole record: the closing write opens the incident."""
        if not self._in_one:
            return await self._close_in_two(outcome, message)
        self._ended = self._ledger.ended(outcome)
        # No await between these: a reader sees the outcome and its incident together.
        self._ledger.finish(outcome, message)
        if needs_incident(self._ended):
            incident_id = incident_id_for(self._ended.change_id)
            self._ledger.status.incident_id = incident_id
            self._ledger.event("incident", f"opened {incident_id}")
        self._closed = True
        if self._pump is not None:
            await self._pump

    async def _close_in_two(self, outcome: Outcome, message: str) -> None:
        """The end as changes started before the closing write was one: the incident is
        opened, then the outcome and its incident's id are published."""
        receipt = await self._steps.close(CloseInput(status=self._ledger.ended(outcome)))
        # No await between these: a reader sees the outcome and its incident together.
        self._ledger.finish(outcome, message)
        if receipt.incident_id:
            self._ledger.status.incident_id = receipt.incident_id
            self._ledger.event("incident", f"opened {receipt.incident_id}")
        self._closed = True
        if self._pump is not None:
            await self._pump

    def _behind(self) -> bool:
        """True while the store lacks part of the timeline."""
        return self._through < len(self._ledger.status.timeline)

    def _due(self) -> bool:
        """True when the store should hear of the change now (see the module docstring)."""
        if not self._at_moments:
            return self._ledger.behind()
        if self._closed:
            return self._behind()
        return any(
            e.kind in _HELD or (e.kind == "stage" and e.stage in _MOMENTS)
            for e in self._ledger.status.timeline[self._through :]
        )

    async def _run(self) -> None:
        while True:
            await workflow.wait_condition(lambda: self._due() or self._closed)
            if not self._due():
                return
            data = self._ledger.unrecorded()
            if self._ended is not None:
                ended, self._ended = self._ended, None
                closed = await self._steps.close(CloseInput(status=ended, audit=data))
                assert closed.recorded_through is not None
                through = closed.recorded_through
            else:
                through = (await self._steps.record(data)).recorded_through
            self._through = max(self._through, through)
            self._ledger.recorded(through, Stage(data.stage))
