"""Pause, resume and abort: who may send them, and the safe points where a change holds or
stops. A pause or abort is honoured from anyone (it only makes the change safer) and its
sender verified afterwards; a resume counts only with the front door's signed proof."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from changegate.models import (
        AuthorityVerdict,
        Control,
        ControlAction,
        ControlCheck,
        HaltCause,
        Outcome,
    )
    from changegate.models.status import Countdown
    from changegate.workflows.ledger import Ledger
    from changegate.workflows.steps import Steps


class Halt(Exception):
    """Ends the stages early; the workflow decides whether that means a rollback."""

    def __init__(
        self, outcome: Outcome, cause: HaltCause, reason: str, *, error: str | None = None
    ) -> None:
        """Stop with `outcome` (ROLLED_BACK once something was applied) for `reason`."""
        super().__init__(reason)
        self.outcome = outcome
        self.cause = cause
        self.reason = reason
        self.error = error


class Controls:
    """The operator's hold and stop, checked at every safe point of the change."""

    def __init__(self, ledger: Ledger, steps: Steps) -> None:
        """Start unpaused and not aborted; verify senders through `steps`."""
        self._ledger = ledger
        self._steps = steps
        self.paused = False
        self.paused_by: str | None = None
        self.aborted: Control | None = None
        self.applied_any = False

    # ---- what arrives by signal ---------------------------------------------------------

    async def on_pause(self, control: Control) -> None:
        """Hold at once; then verify and record who sent it."""
        self.pause(_claimed(control))
        await self._attest(control, "pause")

    async def on_abort(self, control: Control) -> None:
        """Stop at once; then verify and record who sent it."""
        self.abort(_claimed(control))
        await self._attest(control, "abort")

    async def on_resume(self, control: Control) -> None:
        """Resume only on a verified proof; its kill switch comes from the proof."""
        verdict = await self._verify(control, "resume")
        if not verdict.valid or control.proof is None:
            self._ledger.event(
                "resume-refused",
                f"resume claiming to be {control.actor!r} not honoured ({verdict.rule}): "
                f"{verdict.reason}",
            )
            return
        proof = control.proof
        self.resume(
            control.model_copy(update={"actor": proof.principal, "kill_switch": proof.kill_switch})
        )

    async def _verify(self, control: Control, action: ControlAction) -> AuthorityVerdict:
        if control.proof is None:
            return AuthorityVerdict(
                valid=False,
                rule="control.unauthenticated",
                reason=f"the {action} carries no signed proof of who sent it",
            )
        check = ControlCheck(
            change_id=self._ledger.status.change_id, action=action, proof=control.proof
        )
        try:
            return await self._steps.verify_control(check)
        except ActivityError as exc:
            return AuthorityVerdict(valid=False, rule="control.unverified", reason=str(exc))

    async def _attest(self, control: Control, action: ControlAction) -> None:
        verdict = await self._verify(control, action)
        if not verdict.valid:
            self._ledger.event(
                "control-unverified",
                f"{action} claiming to be {control.actor!r} came without a valid proof "
                f"({verdict.rule}): honoured, since it only makes the change safer",
            )

    # ---- the state -----------------------------------------------------------------------

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
        status = self._ledger.status
        try:
            while remaining > 0:
                await self.checkpoint(label)
                started = workflow.now()
                status.countdown = Countdown(
                    label=label,
                    seconds=seconds,
                    remaining_seconds=remaining,
                    started_at=started,
                    ends_at=started + timedelta(seconds=remaining),
                )
                try:
                    await workflow.wait_condition(
                        lambda: self.paused or self.aborted is not None,
                        timeout=remaining,
                        timeout_summary=f"{label} ({remaining:g}s)",
                    )
                except TimeoutError:
                    break
                remaining -= (workflow.now() - started).total_seconds()
                status.countdown = status.countdown.model_copy(
                    update={"remaining_seconds": remaining, "ends_at": None}
                )
        finally:
            status.countdown = None
        await self.checkpoint(label)

    def _set(self, paused: bool, by: str | None) -> None:
        self.paused = paused
        self.paused_by = by
        self._ledger.status.paused = paused
        self._ledger.publish()


def _claimed(control: Control) -> Control:
    """The control with its actor as far as it can be trusted before verification."""
    if control.proof is not None:
        return control.model_copy(update={"actor": control.proof.principal})
    return control.model_copy(
        update={"actor": f"{control.actor} (unverified)", "kill_switch": None}
    )
