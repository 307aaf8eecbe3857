"""Pause, resume and abort: the safe points where a change holds or stops."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from changegate.models import Control, HaltCause, Outcome
    from changegate.workflows.ledger import Ledger


class Halt(Exception):
    """Ends the stages early; the workflow decides whether that means a rollback."""

    def __init__(self, outcome: Outcome, cause: HaltCause, reason: str) -> None:
        """Stop with `outcome` (ROLLED_BACK once something was applied) for `reason`."""
        super().__init__(reason)
        self.outcome = outcome
        self.cause = cause
        self.reason = reason


class Controls:
    """The operator's hold and stop, checked at every safe point of the change."""

    def __init__(self, ledger: Ledger) -> None:
        """Start unpaused and not aborted."""
        self._ledger = ledger
        self.paused = False
        self.paused_by: str | None = None
        self.aborted: Control | None = None
        self.applied_any = False

    def pause(self, control: Control) -> None:
        """Hold at the next safe point."""
        if self._ledger.status.outcome is not None or self.paused:
            return
        self._set(True, control.kill_switch)
        self._ledger.event("paused", control.reason or "paused", actor=control.actor)

    def resume(self, control: Control) -> None:
        """Continue where the change was held (a kill switch's hold only by that switch)."""
        if not self.paused:
            return
        if control.kill_switch is not None and control.kill_switch != self.paused_by:
            return  # a released switch resumes only the changes it held
        if self.paused_by is not None and control.kill_switch is None:
            self._ledger.event(
                "resume-refused",
                f"held by kill switch {self.paused_by}: release the switch to resume",
                actor=control.actor,
            )
            return
        self._set(False, None)
        self._ledger.event("resumed", control.reason or "resumed", actor=control.actor)

    def abort(self, control: Control) -> None:
        """Stop at the next safe point; whatever was applied is rolled back."""
        if self._ledger.status.outcome is None and self.aborted is None:
            self.aborted = control
            self._ledger.event("abort", control.reason or "aborted", actor=control.actor)

    def hold_for_human(self, message: str) -> None:
        """Pause on the workflow's own account (inconclusive analysis)."""
        self._set(True, None)
        self._ledger.event("paused", message)

    async def checkpoint(self, where: str) -> None:
        """A safe point: holds while paused, raises `Halt` once an abort arrived."""
        if self.paused and self.aborted is None:
            self._ledger.event("held", f"paused at {where}")
            await workflow.wait_condition(lambda: not self.paused or self.aborted is not None)
        if self.aborted is not None:
            raise Halt(
                Outcome.ROLLED_BACK if self.applied_any else Outcome.ABORTED,
                HaltCause.ABORTED,
                f"aborted by {self.aborted.actor} at {where}: {self.aborted.reason}",
            )

    async def bake(self, seconds: float, label: str) -> None:
        """Wait `seconds` of unpaused time; a pause stops the clock, resume continues it."""
        remaining = seconds
        while remaining > 0:
            await self.checkpoint(label)
            started = workflow.now()
            try:
                await workflow.wait_condition(
                    lambda: self.paused or self.aborted is not None,
                    timeout=remaining,
                    timeout_summary=f"{label} ({remaining:g}s)",
                )
            except TimeoutError:
                break
            remaining -= (workflow.now() - started).total_seconds()
        await self.checkpoint(label)

    def _set(self, paused: bool, by: str | None) -> None:
        self.paused = paused
        self.paused_by = by
        self._ledger.status.paused = paused
        self._ledger.publish()
