"""ChangeWorkflow: one agent-proposed change, walked through every stage.

RECON -> VALIDATE -> SUMMARY -> AWAITING_APPROVAL -> CANARY -> ROLLOUT -> VERIFY -> ENDED.
Only the rollout activities change a target, and they are scheduled only after approval.
A failed gate, an apply error, an abort or a cancellation reverts every applied unit in
reverse order (`_rollback`, the one place compensation lives).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import JsonValue
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from changegate.activities import (
        HealthActivities,
        ReconActivities,
        RolloutActivities,
        ValidationActivities,
        render_summary,
    )
    from changegate.health import evaluate
    from changegate.models import (
        AnalysisLimits,
        ApprovalProof,
        ChangeInput,
        ChangePlan,
        ChangeStatus,
        Control,
        Decision,
        Finding,
        HaltCause,
        MeasureInput,
        Measurement,
        ObserveInput,
        Outcome,
        PlanInput,
        Stage,
        SummaryInput,
        TargetObservation,
        UnitChange,
        UnitResult,
        UnitStepInput,
        ValidationReport,
        VerifyInput,
    )
    from changegate.workflows.ledger import Ledger
    from changegate.workflows.options import (
        READ_RETRY,
        READ_TIMEOUT,
        REVERT_RETRY,
        WRITE_RETRY,
        WRITE_TIMEOUT,
    )


class _Halt(Exception):
    """Ends the stages early; `_run` decides whether that means a rollback."""

    def __init__(self, outcome: Outcome, cause: HaltCause, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.cause = cause
        self.reason = reason


@workflow.defn(name="ChangeWorkflow")
class ChangeWorkflow:
    """Runs one change request from reconnaissance to a terminal outcome."""

    @workflow.init
    def __init__(self, data: ChangeInput) -> None:
        """Set up the ledger so that the status query answers from the first moment."""
        self._ledger = Ledger(data)
        self._request = data.request
        self._paused = False
        self._abort: Control | None = None
        self._rejection: Decision | None = None
        self._applied: list[UnitChange] = []

    @property
    def _status(self) -> ChangeStatus:
        return self._ledger.status

    # ---- run ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, data: ChangeInput) -> ChangeStatus:
        """Walk the stages; always end with an outcome, rolling back whatever was applied."""
        try:
            await self._stages()
        except _Halt as halt:
            await self._halt(halt)
        except asyncio.CancelledError:
            await self._halt(
                _Halt(Outcome.ABORTED, HaltCause.CANCELLED, "the workflow was cancelled")
            )
            raise
        finally:
            await workflow.wait_condition(workflow.all_handlers_finished)
        return self._status

    async def _stages(self) -> None:
        observation = await self._recon()
        plan, report = await self._validate(observation)
        await self._summarise(observation, plan, report)
        if report.blocked:
            raise _Halt(Outcome.BLOCKED, HaltCause.BLOCKED, "validation forbids this change")
        proof = await self._await_approval()
        for index, phase in enumerate(plan.phases):
            await self._apply_phase(index, phase, proof)
        await self._verify(plan)
        self._ledger.finish(Outcome.DONE, f"{len(plan.units())} units changed and verified")

    async def _halt(self, halt: _Halt) -> None:
        self._status.halt_cause = halt.cause
        self._status.halt_reason = halt.reason
        if not self._applied:
            self._ledger.finish(halt.outcome, halt.reason + "; nothing was applied")
            return
        self._ledger.event("rollback", f"rolling back: {halt.reason}")
        await self._rollback()

    # ---- stages before approval: read-only -----------------------------------------------

    async def _recon(self) -> TargetObservation:
        await self._checkpoint("RECON")
        target = self._request.target
        try:
            observation: TargetObservation = await workflow.execute_activity_method(
                ReconActivities.observe_target,
                ObserveInput(target=target),
                start_to_close_timeout=READ_TIMEOUT,
                retry_policy=READ_RETRY,
                summary=f"observe {target.label()}",
            )
        except ActivityError as exc:
            raise self._refused("recon-failed", exc) from exc
        self._status.observation = observation
        self._ledger.event("observed", f"{len(observation.units)} units of {target.label()}")
        return observation

    async def _validate(
        self, observation: TargetObservation
    ) -> tuple[ChangePlan, ValidationReport]:
        self._ledger.enter(Stage.VALIDATE)
        await self._checkpoint("VALIDATE")
        data = PlanInput(request=self._request, observation=observation)
        try:
            plan: ChangePlan = await workflow.execute_activity_method(
                ReconActivities.plan_change,
                data,
                start_to_close_timeout=READ_TIMEOUT,
                retry_policy=READ_RETRY,
                summary=f"plan {self._request.change.operation}",
            )
        except ActivityError as exc:
            raise self._refused("plan-failed", exc) from exc
        report: ValidationReport = await workflow.execute_activity_method(
            ValidationActivities.validate_change,
            data,
            start_to_close_timeout=READ_TIMEOUT,
            retry_policy=READ_RETRY,
            summary="compare assumptions with live state",
        )
        self._ledger.adopt_plan(plan)
        self._status.findings = report.findings
        for finding in report.findings:
            self._ledger.event("finding", f"[{finding.severity}] {finding.code}: {finding.message}")
        return plan, report

    async def _summarise(
        self, observation: TargetObservation, plan: ChangePlan, report: ValidationReport
    ) -> None:
        self._ledger.enter(Stage.SUMMARY)
        summary = await workflow.execute_activity(
            render_summary,
            SummaryInput(
                change_id=self._status.change_id,
                request=self._request,
                observation=observation,
                report=report,
                plan=plan,
            ),
            start_to_close_timeout=READ_TIMEOUT,
            retry_policy=READ_RETRY,
            summary="render the approver's summary",
        )
        self._status.summary = summary.text
        self._ledger.event("summary", summary.headline)

    def _refused(self, code: str, exc: ActivityError) -> _Halt:
        cause = exc.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(exc)
        self._status.findings.append(Finding(code=code, severity="block", message=message))
        return _Halt(Outcome.BLOCKED, HaltCause.BLOCKED, message)

    # ---- approval ------------------------------------------------------------------------

    async def _await_approval(self) -> ApprovalProof:
        self._ledger.enter(Stage.AWAITING_APPROVAL)
        timeout = self._request.rollout.approval_timeout_seconds
        self._status.approval_deadline = workflow.now() + timedelta(seconds=timeout)
        try:
            await workflow.wait_condition(
                lambda: (
                    bool(self._status.approvals)
                    or self._rejection is not None
                    or self._abort is not None
                ),
                timeout=timeout,
                timeout_summary="approval deadline",
            )
        except TimeoutError:
            raise _Halt(
                Outcome.EXPIRED, HaltCause.EXPIRED, f"no decision within {timeout:g}s"
            ) from None
        if self._rejection is not None:
            who = self._rejection.actor
            why = self._rejection.reason
            raise _Halt(Outcome.REJECTED, HaltCause.REJECTED, f"rejected by {who}: {why}")
        await self._checkpoint("approval")
        return ApprovalProof(approved_by=[d.actor for d in self._status.approvals])

    # ---- stages after approval: the only writes ------------------------------------------

    async def _apply_phase(self, index: int, phase: list[UnitChange], proof: ApprovalProof) -> None:
        if index == 0:
            self._ledger.enter(Stage.CANARY)
        elif self._status.stage != Stage.ROLLOUT:
            self._ledger.enter(Stage.ROLLOUT)
        name = phase[0].phase
        for unit in phase:
            await self._checkpoint(f"{name}: before applying {unit.unit_id}")
            # Recorded before the call: an apply that failed midway may still have landed.
            self._applied.append(unit)
            result = await self._unit_step(unit, proof)
            if not result.ok:
                self._ledger.mark(unit.unit_id, "apply_failed", result.detail)
                raise _Halt(
                    Outcome.ROLLED_BACK,
                    HaltCause.APPLY_FAILED,
                    f"apply of {unit.unit_id} failed: {result.detail}",
                )
            self._ledger.mark(unit.unit_id, "applied")
            self._ledger.event("applied", f"{unit.unit_id} ({name})", data=dict(unit.after))
            self._ledger.publish()
        rollout = self._request.rollout
        bake = rollout.canary_bake_seconds if index == 0 else rollout.wave_bake_seconds
        await self._bake(bake, f"{name} bake")
        await self._gate(name)

    async def _unit_step(
        self, unit: UnitChange, proof: ApprovalProof, *, revert: bool = False
    ) -> UnitResult:
        data = UnitStepInput(
            change_id=self._status.change_id,
            target=self._request.target,
            unit=unit,
            approval=proof,
        )
        verb = "revert" if revert else "apply"
        try:
            result: UnitResult = await workflow.execute_activity_method(
                RolloutActivities.revert_unit if revert else RolloutActivities.apply_unit,
                data,
                start_to_close_timeout=WRITE_TIMEOUT,
                retry_policy=REVERT_RETRY if revert else WRITE_RETRY,
                summary=f"{verb} {unit.unit_id} ({unit.phase})",
            )
        except ActivityError as exc:
            cause = exc.cause
            detail = cause.message if isinstance(cause, ApplicationError) else str(exc)
            return UnitResult(unit_id=unit.unit_id, ok=False, detail=detail)
        return result

    async def _verify(self, plan: ChangePlan) -> None:
        self._ledger.enter(Stage.VERIFY)
        for unit in plan.units():
            result = await self._read(unit.unit_id, unit.after, f"verify {unit.unit_id}")
            if not result.ok:
                raise _Halt(
                    Outcome.ROLLED_BACK,
                    HaltCause.VERIFY_FAILED,
                    f"{unit.unit_id} drifted: {result.detail}",
                )
            self._ledger.mark(unit.unit_id, "verified")
        self._ledger.event("verified", f"{len(plan.units())} units read back as planned")

    async def _read(self, unit_id: str, expected: dict[str, JsonValue], label: str) -> UnitResult:
        result: UnitResult = await workflow.execute_activity_method(
            RolloutActivities.verify_unit,
            VerifyInput(target=self._request.target, unit_id=unit_id, expected=expected),
            start_to_close_timeout=READ_TIMEOUT,
            retry_policy=REVERT_RETRY,
            summary=label,
        )
        return result

    # ---- health gates --------------------------------------------------------------------

    async def _gate(self, name: str) -> None:
        rollout = self._request.rollout
        limits = AnalysisLimits(
            count=rollout.analysis_count,
            failure_limit=rollout.failure_limit,
            inconclusive_limit=rollout.inconclusive_limit,
        )
        units = [u.unit_id for u in self._applied]
        measurements: list[Measurement] = []
        while True:
            await self._bake(rollout.analysis_interval_seconds, f"{name} analysis interval")
            measurement: Measurement = await workflow.execute_activity_method(
                HealthActivities.measure_health,
                MeasureInput(
                    target_kind=self._request.target.kind,
                    selector=self._request.target.selector,
                    unit_ids=units,
                    checks=self._request.health_checks,
                ),
                start_to_close_timeout=READ_TIMEOUT,
                retry_policy=READ_RETRY,
                summary=f"{name} analysis {len(measurements) + 1}/{limits.count}",
            )
            measurements.append(measurement)
            self._ledger.event("measurement", f"{name}: {measurement.phase}: {measurement.reason}")
            verdict = evaluate(measurements, limits)
            if verdict is None:
                continue
            self._ledger.event("analysis", f"{name}: {verdict.phase}: {verdict.reason}")
            if verdict.phase == "successful":
                return
            if verdict.phase == "inconclusive":
                self._set_paused(True)
                self._ledger.event(
                    "paused",
                    f"{name} analysis inconclusive: held for a human; "
                    "resume to continue, abort to roll back",
                )
                await self._checkpoint(f"{name} inconclusive analysis")
                return
            failed = verdict.phase == "failed"
            cause = HaltCause.HEALTH_FAILED if failed else HaltCause.HEALTH_ERROR
            raise _Halt(
                Outcome.ROLLED_BACK, cause, f"{name} health {verdict.phase}: {verdict.reason}"
            )

    # ---- rollback: the one place compensation lives --------------------------------------

    async def _rollback(self) -> None:
        self._ledger.enter(Stage.ROLLBACK)
        proof = ApprovalProof(approved_by=[d.actor for d in self._status.approvals] or ["system"])
        failed: list[str] = []
        for unit in reversed(self._applied):
            check = await self._read(
                unit.unit_id, unit.before, f"read {unit.unit_id} before revert"
            )
            if not check.ok:
                await self._unit_step(unit, proof, revert=True)
                check = await self._read(
                    unit.unit_id, unit.before, f"verify revert of {unit.unit_id}"
                )
            if check.ok:
                self._ledger.mark(unit.unit_id, "reverted")
                self._ledger.event("reverted", f"{unit.unit_id} is back at its old value")
            else:
                failed.append(unit.unit_id)
                self._ledger.mark(unit.unit_id, "revert_failed", check.detail)
                self._ledger.event("revert-failed", f"{unit.unit_id}: {check.detail}")
            self._ledger.publish()
        if failed:
            self._ledger.finish(
                Outcome.ROLLBACK_FAILED,
                f"{', '.join(failed)} did not return to the old value: a human must act",
            )
        else:
            self._ledger.finish(
                Outcome.ROLLED_BACK, f"{len(self._applied)} units reverted and verified"
            )

    # ---- pause, resume, abort ------------------------------------------------------------

    async def _checkpoint(self, where: str) -> None:
        """A safe point: holds while paused, raises once an abort arrives."""
        if self._paused and self._abort is None:
            self._ledger.event("held", f"paused at {where}")
            await workflow.wait_condition(lambda: not self._paused or self._abort is not None)
        if self._abort is not None:
            raise _Halt(
                Outcome.ABORTED if not self._applied else Outcome.ROLLED_BACK,
                HaltCause.ABORTED,
                f"aborted by {self._abort.actor} at {where}: {self._abort.reason}",
            )

    async def _bake(self, seconds: float, label: str) -> None:
        """Wait `seconds` of unpaused time; a pause stops the clock, resume continues it."""
        remaining = seconds
        while remaining > 0:
            await self._checkpoint(label)
            started = workflow.now()
            try:
                await workflow.wait_condition(
                    lambda: self._paused or self._abort is not None,
                    timeout=remaining,
                    timeout_summary=f"{label} ({remaining:g}s)",
                )
            except TimeoutError:
                break
            remaining -= (workflow.now() - started).total_seconds()
        await self._checkpoint(label)

    def _set_paused(self, paused: bool) -> None:
        self._paused = paused
        self._status.paused = paused
        self._ledger.publish()

    # ---- signals and query ---------------------------------------------------------------

    @workflow.signal
    def approve(self, decision: Decision) -> None:
        """An approver's approval; counted only while the change awaits one."""
        refusal = self._decision_refusal(decision)
        if refusal:
            self._ledger.event("decision-refused", refusal, actor=decision.actor)
            return
        self._status.approvals.append(decision)
        self._ledger.event("approved", decision.reason or "approved", actor=decision.actor)

    @workflow.signal
    def reject(self, decision: Decision) -> None:
        """An approver's rejection: the change ends with nothing applied."""
        refusal = self._decision_refusal(decision)
        if refusal:
            self._ledger.event("decision-refused", refusal, actor=decision.actor)
            return
        self._rejection = decision
        self._ledger.event("rejected", decision.reason or "rejected", actor=decision.actor)

    @workflow.signal
    def pause(self, control: Control) -> None:
        """Hold at the next safe point (stage boundary, before each unit, inside bakes)."""
        if self._status.outcome is None and not self._paused:
            self._set_paused(True)
            self._ledger.event("paused", control.reason or "paused", actor=control.actor)

    @workflow.signal
    def resume(self, control: Control) -> None:
        """Continue exactly where the change was held."""
        if self._paused:
            self._set_paused(False)
            self._ledger.event("resumed", control.reason or "resumed", actor=control.actor)

    @workflow.signal
    def abort(self, control: Control) -> None:
        """Stop: before any apply nothing is changed; after, every applied unit is reverted."""
        if self._status.outcome is None and self._abort is None:
            self._abort = control
            self._ledger.event("abort", control.reason or "aborted", actor=control.actor)

    @workflow.query
    def status(self) -> ChangeStatus:
        """Everything known about the change right now."""
        return self._status

    def _decision_refusal(self, decision: Decision) -> str | None:
        if self._status.stage != Stage.AWAITING_APPROVAL or self._status.outcome is not None:
            return f"decision not counted: the change is in {self._status.stage.value}"
        if self._rejection is not None or self._status.approvals:
            return "decision not counted: the change has already been decided"
        agent = self._request.agent
        if decision.actor in {agent.agent_id, agent.on_behalf_of}:
            return (
                f"decision not counted: {decision.actor} proposed this change "
                "(directly or through its agent) and cannot decide on it"
            )
        return None
