"""ChangeWorkflow: one agent-proposed change, walked through every stage.

    admission ticket -> RECON -> VALIDATE -> SUMMARY -> AWAITING_APPROVAL
        -> CANARY -> ROLLOUT -> VERIFY -> ENDED (DONE)
    any Halt after an apply -> ROLLBACK (reverse order, three-way) -> ENDED

Only the rollout activities change a target, and they are scheduled only after a quorum of
signed approvals. An approval is bound to what it was given on: just before the first apply
the target is observed again, and any drift voids the approvals and returns to RECON. A
failed gate, an apply error, an abort or a cancellation reverts every applied unit in
reverse order (`_rollback`, the one place compensation lives). No activity failure escapes:
once anything is applied the change ends DONE, ROLLED_BACK or ROLLBACK_FAILED, or holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from changegate.models import (
        ApprovalProof,
        ChangeInput,
        ChangePlan,
        ChangeStatus,
        Control,
        Decision,
        DecisionJudgement,
        DecisionRequest,
        Finding,
        HaltCause,
        Outcome,
        Stage,
        SummaryInput,
        TargetObservation,
        UnitChange,
        UnitResult,
        ValidationReport,
    )
    from changegate.policy.drift import drift
    from changegate.summary import render
    from changegate.workflows.admission import check_admission
    from changegate.workflows.approvals import Approvals
    from changegate.workflows.audit import AuditTrail
    from changegate.workflows.controls import Controls, Halt
    from changegate.workflows.gates import HealthGate
    from changegate.workflows.ledger import Ledger
    from changegate.workflows.notify import Notices
    from changegate.workflows.rollback import Rollback
    from changegate.workflows.steps import Steps, failure_message, failure_type

T = TypeVar("T")


@workflow.defn(name="ChangeWorkflow")
class ChangeWorkflow:
    """Runs one change request from its admission ticket to a terminal outcome."""

    @workflow.init
    def __init__(self, data: ChangeInput) -> None:
        """Set up the ledger so that the status query answers from the first moment."""
        self._data = data
        self._request = data.request
        self._ledger = Ledger(data)
        self._steps = Steps(data.change_id, data.request.target)
        self._controls = Controls(self._ledger, self._steps)
        self._notices = Notices(self._ledger, data.notify)
        self._approvals = Approvals(
            self._ledger, self._steps, self._controls, data.request.agent, self._notices
        )
        self._gate = HealthGate(
            self._ledger, self._steps, self._controls, data.request.health_checks
        )
        self._rollback = Rollback(self._ledger, self._steps)
        self._audit = AuditTrail(self._ledger, self._steps)
        self._rollout = data.request.rollout
        self._applied: list[UnitChange] = []
        self._ending: tuple[Outcome, str] | None = None
        # Changes started before VALIDATE and planning were one activity, the summary was
        # rendered here and verification read every unit at once keep their old steps.
        self._in_one = True

    @property
    def _status(self) -> ChangeStatus:
        return self._ledger.status

    @workflow.run
    async def run(self, data: ChangeInput) -> ChangeStatus:
        """Walk the stages; always end with an outcome, rolling back whatever was applied."""
        self._in_one = workflow.patched("fewer-activities")
        self._audit.start(in_one=self._in_one)
        try:
            await self._stages()
        except Halt as halt:
            await self._halt(halt)
        except ActivityError as exc:
            message = f"a step failed for good: {failure_message(exc)}"
            cause = HaltCause.APPLY_FAILED if self._applied else HaltCause.BLOCKED
            outcome = Outcome.ROLLED_BACK if self._applied else Outcome.BLOCKED
            await self._halt(Halt(outcome, cause, message, error=failure_type(exc)))
        except asyncio.CancelledError:
            await self._halt(
                Halt(Outcome.ABORTED, HaltCause.CANCELLED, "the workflow was cancelled")
            )
            await self._close()
            raise
        await self._close()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._status

    async def _stages(self) -> None:
        await check_admission(self._data, self._ledger, self._steps)
        while True:
            observation = await self._recon()
            report, plan = await self._assess(observation)
            await self._summarise(observation, plan, report)
            if report.blocked:
                raise Halt(Outcome.BLOCKED, HaltCause.BLOCKED, _forbidden(report))
            self._ledger.enter(Stage.AWAITING_APPROVAL)
            proof = await self._approvals.wait(self._rollout.approval_timeout_seconds)
            if await self._still_as_approved(plan):
                break
        for index, phase in enumerate(plan.phases):
            await self._apply_phase(index, phase, proof)
        await self._verify(plan)
        self._end(Outcome.DONE, f"{len(plan.units())} units changed and verified")

    # ---- before approval: read-only --------------------------------------------------------

    async def _recon(self) -> TargetObservation:
        if self._status.stage != Stage.RECON:
            self._ledger.enter(Stage.RECON)
        await self._controls.checkpoint("RECON")
        observation = await self._read_only(self._steps.observe(), "recon-failed")
        self._status.observation = observation
        label = self._request.target.label()
        self._ledger.event("observed", f"{len(observation.units)} units of {label}")
        return observation

    async def _assess(self, observation: TargetObservation) -> tuple[ValidationReport, ChangePlan]:
        """VALIDATE, and the plan under the rollout it decides (one activity since
        `fewer-activities`, two before)."""
        self._ledger.enter(Stage.VALIDATE)
        await self._controls.checkpoint("VALIDATE")
        if self._in_one:
            step = self._steps.assess(self._request, observation)
            assessment = await self._read_only(step, "validate-failed")
            report, plan = assessment.report, assessment.plan
            self._take(report)
        else:
            checks = self._steps.validate(self._request, observation)
            report = await self._read_only(checks, "validate-failed")
            self._take(report)
            request = self._request.model_copy(update={"rollout": self._rollout})
            plan = await self._read_only(self._steps.plan(request, observation), "plan-failed")
        self._ledger.adopt_plan(plan)
        return report, plan

    def _take(self, report: ValidationReport) -> None:
        """Adopt VALIDATE's findings, risk tier and effective rollout."""
        voided = [f for f in self._status.findings if f.code == "approval-voided"]
        self._status.findings = voided + report.findings
        self._status.risk = report.risk
        self._rollout = report.rollout or self._request.rollout
        if report.risk is not None:
            self._status.approvals_required = report.risk.required_approvals
            self._ledger.tag_risk(report.risk.tier)
        for finding in report.findings:
            self._ledger.event("finding", f"[{finding.severity}] {finding.code}: {finding.message}")

    async def _summarise(
        self, observation: TargetObservation, plan: ChangePlan, report: ValidationReport
    ) -> None:
        self._ledger.enter(Stage.SUMMARY)
        data = SummaryInput(
            change_id=self._status.change_id,
            request=self._request,
            observation=observation,
            report=report.model_copy(update={"findings": self._status.findings}),
            plan=plan,
        )
        # Pure and deterministic: rendered here since `fewer-activities`.
        summary = render(data) if self._in_one else await self._steps.summarise(data)
        self._status.summary = summary.text
        self._ledger.event("summary", summary.headline)

    async def _read_only(self, step: Awaitable[T], code: str) -> T:
        """A read-only step; a permanent failure blocks the change (nothing is applied yet)."""
        try:
            return await step
        except ActivityError as exc:
            message = failure_message(exc)
            self._status.findings.append(Finding(code=code, severity="block", message=message))
            raise Halt(Outcome.BLOCKED, HaltCause.BLOCKED, message) from exc

    async def _still_as_approved(self, plan: ChangePlan) -> bool:
        """Observe again; a unit that moved since the summary voids every approval."""
        moved = drift(plan, await self._read_only(self._steps.observe(), "recon-failed"))
        if moved:
            self._approvals.void(moved)
        return not moved

    # ---- after approval: the only writes ---------------------------------------------------

    async def _apply_phase(self, index: int, phase: list[UnitChange], proof: ApprovalProof) -> None:
        if index == 0:
            self._ledger.enter(Stage.CANARY)
        elif self._status.stage != Stage.ROLLOUT:
            self._ledger.enter(Stage.ROLLOUT)
        name = phase[0].phase
        for unit in phase:
            await self._controls.checkpoint(f"{name}: before applying {unit.unit_id}")
            # Recorded before the call: an apply that failed midway may still have landed.
            self._applied.append(unit)
            self._controls.applied_any = True
            result = await self._steps.unit_step(unit, proof)
            if result.conflict:
                self._applied.remove(unit)  # nothing was written: not ours to revert
                self._ledger.mark(unit.unit_id, "conflict", result.detail)
                self._rollback.conflict("apply-conflict", unit, result.state)
                raise Halt(
                    Outcome.ROLLED_BACK,
                    HaltCause.APPLY_FAILED,
                    f"{unit.unit_id} changed since it was observed: {result.detail}",
                )
            if not result.ok:
                self._ledger.mark(unit.unit_id, "apply_failed", result.detail)
                raise Halt(
                    Outcome.ROLLED_BACK,
                    HaltCause.APPLY_FAILED,
                    f"apply of {unit.unit_id} failed: {result.detail}",
                    error=result.error_type,
                )
            self._ledger.mark(unit.unit_id, "applied")
            self._ledger.event("applied", f"{unit.unit_id} ({name})", data=dict(unit.after))
        bake = self._rollout.canary_bake_seconds if index == 0 else self._rollout.wave_bake_seconds
        await self._controls.bake(bake, f"{name} bake")
        await self._gate.run(name, [u.unit_id for u in self._applied], self._rollout)

    async def _verify(self, plan: ChangePlan) -> None:
        self._ledger.enter(Stage.VERIFY)
        for result in await self._read_back(plan):
            if not result.ok:
                raise Halt(
                    Outcome.ROLLED_BACK,
                    HaltCause.VERIFY_FAILED,
                    f"{result.unit_id} drifted: {result.detail}",
                )
            self._ledger.mark(result.unit_id, "verified")
        self._ledger.event("verified", f"{len(plan.units())} units read back as planned")

    async def _read_back(self, plan: ChangePlan) -> list[UnitResult]:
        """Every unit read back, in plan order: in one activity since `fewer-activities`."""
        if self._in_one:
            expected = {unit.unit_id: dict(unit.after) for unit in plan.units()}
            return (await self._steps.read_all(expected)).results
        results = []
        for unit in plan.units():
            result = await self._steps.read(unit.unit_id, unit.after, f"verify {unit.unit_id}")
            results.append(result)
            if not result.ok:
                break
        return results

    # ---- ending: rollback, outcome, incident, audit ----------------------------------------

    async def _halt(self, halt: Halt) -> None:
        self._status.halt_cause = halt.cause
        self._status.halt_reason = halt.reason
        self._status.halt_error = halt.error
        if not self._applied:
            self._end(halt.outcome, halt.reason + "; nothing was applied")
            return
        self._ledger.event("rollback", f"rolling back: {halt.reason}")
        self._end(*await self._rollback.run(self._applied))

    def _end(self, outcome: Outcome, message: str) -> None:
        """Decide the outcome; the audit trail publishes it together with its incident."""
        self._ending = (outcome, message)

    async def _close(self) -> None:
        await self._audit.close(*(self._ending or (Outcome.ABORTED, "ended without an outcome")))
        await self._notices.outcome()

    # ---- signals, update, query ------------------------------------------------------------

    @workflow.signal
    async def approve(self, decision: Decision) -> None:
        """An approval; counts only with the front door's signed proof."""
        await self._approvals.decide(DecisionRequest(verdict="approve", **decision.model_dump()))

    @workflow.signal
    async def reject(self, decision: Decision) -> None:
        """A rejection; counts only with the front door's signed proof."""
        await self._approvals.decide(DecisionRequest(verdict="reject", **decision.model_dump()))

    @workflow.update
    async def decide(self, request: DecisionRequest) -> DecisionJudgement:
        """Approve or reject, answered with whether the decision counted and why."""
        return await self._approvals.decide(request)

    @workflow.signal
    async def pause(self, control: Control) -> None:
        """Hold at the next safe point; honoured from anyone, the sender recorded."""
        await self._controls.on_pause(control)

    @workflow.signal
    async def resume(self, control: Control) -> None:
        """Continue where the change was held: only with a signed proof."""
        await self._controls.on_resume(control)

    @workflow.signal
    async def abort(self, control: Control) -> None:
        """Stop; whatever was applied is rolled back. Honoured from anyone."""
        await self._controls.on_abort(control)

    @workflow.query
    def status(self) -> ChangeStatus:
        """Everything known about the change right now."""
        return self._status


def _forbidden(report: ValidationReport) -> str:
    """The blocking findings, named: the final line says why the change may not run."""
    blocking = [f.message for f in report.findings if f.severity == "block"]
    return "; ".join(blocking) or "validation forbids this change"
