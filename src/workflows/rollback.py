"""Rollback, the one place compensation lives: revert what was applied, three-way."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import JsonValue

    from changegate.models import (
        ApprovalProof,
        Finding,
        Outcome,
        Stage,
        UnitChange,
        UnitStatus,
    )
    from changegate.workflows.ledger import Ledger
    from changegate.workflows.steps import Steps


class Rollback:
    """Reverts applied units newest first, and names the ones someone else changed."""

    def __init__(self, ledger: Ledger, steps: Steps) -> None:
        """Revert through `steps`, recording each unit in `ledger`."""
        self._ledger = ledger
        self._steps = steps

    async def run(self, applied: list[UnitChange]) -> tuple[Outcome, str]:
        """Revert `applied`: a unit at the value we wrote is reverted and read back; one at
        its old value is left; one at any other value is never overwritten (a conflict)."""
        self._ledger.enter(Stage.ROLLBACK)
        approvers = [d.actor for d in self._ledger.status.approvals] or ["system"]
        proof = ApprovalProof(approved_by=approvers)
        failed: list[str] = []
        skipped = 0
        for unit in reversed(applied):
            result = await self._steps.unit_step(unit, proof, revert=True)
            if result.skipped:
                skipped += 1
                self._ledger.mark(unit.unit_id, "revert_skipped", result.detail)
                self._ledger.event(
                    "revert-skipped",
                    f"{unit.unit_id} already holds its old value (the apply never landed, or "
                    "it was reverted already); nothing written",
                )
            elif result.ok:
                self._ledger.mark(unit.unit_id, "reverted")
                self._ledger.event("reverted", f"{unit.unit_id} is back at its old value")
            else:
                failed.append(unit.unit_id)
                status: UnitStatus = "conflict" if result.conflict else "revert_failed"
                self._ledger.mark(unit.unit_id, status, result.detail)
                if result.conflict:
                    self.conflict("rollback-conflict", unit, result.state)
                else:
                    self._ledger.event("revert-failed", f"{unit.unit_id}: {result.detail}")
        if failed:
            who = ", ".join(failed)
            return Outcome.ROLLBACK_FAILED, f"{who} not returned to the old value: a human must act"
        left = f", {skipped} already at their old value" if skipped else ""
        reverted = len(applied) - skipped
        return Outcome.ROLLED_BACK, f"{reverted} units reverted and verified{left}"

    def conflict(self, code: str, unit: UnitChange, now: dict[str, JsonValue]) -> None:
        """Name the unit and its three values: before, what we wrote, what it holds now."""
        found = {k: now.get(k) for k in unit.after}
        message = (
            f"{unit.unit_id}: before {_values(unit.before)}, changegate's value "
            f"{_values(unit.after)}, now {_values(found)}: someone else changed it, so "
            "changegate left it as found; a human must decide which value stands"
        )
        self._ledger.status.findings.append(Finding(code=code, severity="block", message=message))
        self._ledger.event(code, message, data={"unit_id": unit.unit_id, "now": found})


def _values(values: dict[str, JsonValue]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in values.items())
