"""The audit trail: the store hears of the change in the background and catches up.

The workflow's ledger is the source of truth. Writes wait out a store outage (no attempt
limit) and are idempotent by event index, so the store ends equal to the ledger and never
fails or stalls a stage. The outcome is published together with its incident.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from changegate.models import CloseInput, Outcome, Stage
    from changegate.workflows.ledger import Ledger
    from changegate.workflows.steps import Steps


class AuditTrail:
    """Keeps the audit store in step with the ledger until the change is closed."""

    def __init__(self, ledger: Ledger, steps: Steps) -> None:
        """Write `ledger`'s record through `steps`."""
        self._ledger = ledger
        self._steps = steps
        self._closed = False
        self._pump: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin writing in the background."""
        self._pump = asyncio.create_task(self._run())

    async def close(self, outcome: Outcome, message: str) -> None:
        """Open the incident `outcome` needs, publish both at once, then let the store catch
        up with the whole record."""
        receipt = await self._steps.close(CloseInput(status=self._ledger.ended(outcome)))
        # No await between these: a reader sees the outcome and its incident together.
        self._ledger.finish(outcome, message)
        if receipt.incident_id:
            self._ledger.status.incident_id = receipt.incident_id
            self._ledger.event("incident", f"opened {receipt.incident_id}")
        self._closed = True
        if self._pump is not None:
            await self._pump

    async def _run(self) -> None:
        while True:
            await workflow.wait_condition(lambda: self._ledger.behind() or self._closed)
            if not self._ledger.behind():
                return
            data = self._ledger.unrecorded()
            receipt = await self._steps.record(data)
            self._ledger.recorded(receipt.recorded_through, Stage(data.stage))
