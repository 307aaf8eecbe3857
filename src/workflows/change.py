"""ChangeWorkflow: one agent-proposed change, walked through every stage.

RECON -> VALIDATE -> SUMMARY -> AWAITING_APPROVAL -> CANARY -> ROLLOUT -> VERIFY -> ENDED.
Only the rollout activities change a target, and they are scheduled only after approval.
An approval is bound to what it was given on: just before the first apply the target is
observed again, and any drift voids the approvals and returns the change to RECON.
A failed gate, an apply error, an abort or a cancellation reverts every applied unit in
reverse order (`_rollback`, the one place compensation lives).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pydantic import JsonValue

    from changegate.health import evaluate
    from changegate.models import (
        AnalysisLimits,
        ApprovalProof,
        AuthorityVerdict,
        ChangeInput,
        ChangePlan,
        ChangeRequest,
        ChangeStatus,
        CloseInput,
        Control,
        ControlAction,
        ControlCheck,
        Decision,
        DecisionJudgement,
        DecisionRequest,
        DecisionVerdict,
        EscalationInput,
        Finding,
        HaltCause,
        JudgeInput,
        Measurement,
        Outcome,
        RiskAssessment,
        Stage,
        SummaryInput,
        TargetObservation,
        TicketCheck,
        UnitChange,
        UnitStatus,
        ValidationReport,
    )
    from changegate.workflows.controls import Controls, Halt
    from changegate.workflows.ledger import Ledger
    from changegate.workflows.steps import Steps, failure_message

# Escalate when this share of the approval window has passed without a quorum.
ESCALATE_AT = 0.8


@workflow.defn(name="ChangeWorkflow")
class ChangeWorkflow:
    """Runs one change request from reconnaissance to a terminal outcome."""

    @workflow.init
    def __init__(self, data: ChangeInput) -> None:
        """Set up the ledger so that the status query answers from the first moment."""
        self._ledger = Ledger(data)
        self._controls = Controls(self._ledger)
        self._steps = Steps(data.change_id, data.request)
        self._request = data.request
        self._ticket = data.ticket
        self._nonces: set[str] = set()
        self._rejection: Decision | None = None
        self._ending: tuple[Outcome, str] | None = None
        self._closed = False
        self._decisions: list[tuple[str, DecisionVerdict]] = []
        self._applied: list[UnitChange] = []

    @property
    def _status(self) -> ChangeStatus:
        return self._ledger.status

    # ---- run ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, data: ChangeInput) -> ChangeStatus:
        """Walk the stages; always end with an outcome, rolling back whatever was applied.

        No activity failure escapes: once anything is applied the change ends DONE,
        ROLLED_BACK or ROLLBACK_FAILED, or holds for a human. The audit store is written
        in the background and can neither fail nor stall the stages.
        """
        audit = asyncio.create_task(self._audit_pump())
        try:
            await self._stages()
        except Halt as halt:
            await self._halt(halt)
        except ActivityError as exc:
            await self._halt(self._failed_step(exc))
        except asyncio.CancelledError:
            await self._halt(
                Halt(Outcome.ABORTED, HaltCause.CANCELLED, "the workflow was cancelled")
            )
            await self._close(audit)
            raise
        await self._close(audit)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._status

    async def _stages(self) -> None:
        await self._check_admission()
        while True:
            observation = await self._recon()
            report = await self._validate(observation)
            plan = await self._plan(observation, report)
            await self._summarise(observation, plan, report)
            if report.blocked:
                raise Halt(Outcome.BLOCKED, HaltCause.BLOCKED, "validation forbids this change")
            proof = await self._await_approval()
            if await self._still_as_approved(plan):
                break
        for index, phase in enumerate(plan.phases):
            await self._apply_phase(index, phase, proof)
        await self._verify(plan)
        self._end(Outcome.DONE, f"{len(plan.units())} units changed and verified")

    def _failed_step(self, exc: ActivityError) -> Halt:
        message = f"a step failed for good: {failure_message(exc)}"
        self._ledger.event("step-failed", message)
        if self._applied:
            return Halt(Outcome.ROLLED_BACK, HaltCause.APPLY_FAILED, message)
        return Halt(Outcome.BLOCKED, HaltCause.BLOCKED, message)

    async def _check_admission(self) -> None:
        """Only a workflow the front door admitted (a valid signed ticket) may go on."""
        verdict = await self._steps.verify_admission(
            TicketCheck(
                change_id=self._status.change_id,
                request=self._request,
                ticket=self._ticket,
                started_at=workflow.info().start_time,
            )
        )
        if verdict.valid:
            self._ledger.event("admitted", verdict.reason)
            return
        message = f"not admitted ({verdict.rule}): {verdict.reason}"
        self._status.findings.append(
            Finding(code="not-admitted", severity="block", message=message)
        )
        raise Halt(Outcome.BLOCKED, HaltCause.BLOCKED, message)

    async def _halt(self, halt: Halt) -> None:
        self._status.halt_cause = halt.cause
        self._status.halt_reason = halt.reason
        if not self._applied:
            self._end(halt.outcome, halt.reason + "; nothing was applied")
            return
        self._ledger.event("rollback", f"rolling back: {halt.reason}")
        await self._rollback()

    async def _enter(self, stage: Stage) -> None:
        self._ledger.enter(stage)

    def _end(self, outcome: Outcome, message: str) -> None:
        """Decide the outcome; `_close` publishes it together with its incident."""
        self._ending = (outcome, message)

    async def _audit_pump(self) -> None:
        """Write what the store lacks, in order, for as long as the change runs.

        Waits out a store outage (retries without cutoff): the ledger stays the truth and
        the store catches up; writes are idempotent by event index.
        """
        while True:
            await workflow.wait_condition(lambda: self._ledger.behind() or self._closed)
            if not self._ledger.behind():
                return
            data = self._ledger.unrecorded()
            receipt = await self._steps.record(data)
            self._ledger.recorded(receipt.recorded_through, Stage(data.stage))

    async def _close(self, audit: asyncio.Task[None]) -> None:
        """Open the incident the outcome needs, publish both at once, let the audit catch up."""
        outcome, message = self._ending or (Outcome.ABORTED, "ended without an outcome")
        receipt = await self._steps.close(CloseInput(status=self._ledger.ended(outcome)))
        # No await between these: a reader sees the outcome and its incident together.
        self._ledger.finish(outcome, message)
        if receipt.incident_id:
            self._status.incident_id = receipt.incident_id
            self._ledger.event("incident", f"opened {receipt.incident_id}")
        self._closed = True
        await audit

    # ---- stages before approval: read-only -----------------------------------------------

    async def _recon(self) -> TargetObservation:
        if self._status.stage != Stage.RECON:
            await self._enter(Stage.RECON)
        await self._controls.checkpoint("RECON")
        try:
            observation = await self._steps.observe()
        except ActivityError as exc:
            raise self._refused("recon-failed", exc) from exc
        self._status.observation = observation
        label = self._request.target.label()
        self._ledger.event("observed", f"{len(observation.units)} units of {label}")
        return observation

    async def _validate(self, observation: TargetObservation) -> ValidationReport:
        await self._enter(Stage.VALIDATE)
        await self._controls.checkpoint("VALIDATE")
        try:
            report = await self._steps.validate(observation)
        except ActivityError as exc:
            raise self._refused("validate-failed", exc) from exc
        voided = [f for f in self._status.findings if f.code == "approval-voided"]
        self._status.findings = voided + report.findings
        self._status.risk = report.risk
        if report.risk is not None:
            self._status.approvals_required = report.risk.required_approvals
            self._ledger.tag_risk(report.risk.tier)
        for finding in report.findings:
            self._ledger.event("finding", f"[{finding.severity}] {finding.code}: {finding.message}")
        return report

    async def _plan(self, observation: TargetObservation, report: ValidationReport) -> ChangePlan:
        try:
            plan = await self._steps.plan(_effective(self._request, report.risk), observation)
        except ActivityError as exc:
            raise self._refused("plan-failed", exc) from exc
        self._ledger.adopt_plan(plan)
        return plan

    async def _summarise(
        self, observation: TargetObservation, plan: ChangePlan, report: ValidationReport
    ) -> None:
        await self._enter(Stage.SUMMARY)
        summary = await self._steps.summarise(
            SummaryInput(
                change_id=self._status.change_id,
                request=self._request,
                observation=observation,
                report=ValidationReport(findings=self._status.findings, risk=report.risk),
                plan=plan,
            )
        )
        self._status.summary = summary.text
        self._ledger.event("summary", summary.headline)

    def _refused(self, code: str, exc: ActivityError) -> Halt:
        message = failure_message(exc)
        self._status.findings.append(Finding(code=code, severity="block", message=message))
        return Halt(Outcome.BLOCKED, HaltCause.BLOCKED, message)

    # ---- approval ------------------------------------------------------------------------

    async def _await_approval(self) -> ApprovalProof:
        await self._enter(Stage.AWAITING_APPROVAL)
        timeout = self._request.rollout.approval_timeout_seconds
        deadline = workflow.now() + timedelta(seconds=timeout)
        self._status.approval_deadline = deadline
        try:
            try:
                await workflow.wait_condition(
                    self._decided,
                    timeout=timeout * ESCALATE_AT,
                    timeout_summary="escalation point",
                )
            except TimeoutError:
                await self._escalate((deadline - workflow.now()).total_seconds())
                await workflow.wait_condition(
                    self._decided,
                    timeout=max((deadline - workflow.now()).total_seconds(), 0.001),
                    timeout_summary="approval deadline",
                )
        except TimeoutError:
            raise Halt(
                Outcome.EXPIRED, HaltCause.EXPIRED, f"no decision within {timeout:g}s"
            ) from None
        if self._rejection is not None:
            who, why = self._rejection.actor, self._rejection.reason
            raise Halt(Outcome.REJECTED, HaltCause.REJECTED, f"rejected by {who}: {why}")
        await self._controls.checkpoint("approval")
        return ApprovalProof(approved_by=[d.actor for d in self._status.approvals])

    def _decided(self) -> bool:
        return (
            len(self._status.approvals) >= self._status.approvals_required
            or self._rejection is not None
            or self._controls.aborted is not None
        )

    async def _escalate(self, left: float) -> None:
        self._ledger.event("escalated", f"{left:.0f}s left and no quorum yet")
        summary = self._status.summary or ""
        await self._steps.escalate(
            EscalationInput(
                change_id=self._status.change_id,
                headline=summary.splitlines()[0] if summary else "",
                seconds_left=left,
                approvals=len(self._status.approvals),
                approvals_required=self._status.approvals_required,
            )
        )

    async def _still_as_approved(self, plan: ChangePlan) -> bool:
        """Observe again; a unit that moved since the summary voids every approval."""
        try:
            now = await self._steps.observe()
        except ActivityError as exc:
            raise self._refused("recon-failed", exc) from exc
        drift = [
            (unit.unit_id, key, before, _state_of(now, unit.unit_id, key))
            for unit in plan.units()
            for key, before in unit.before.items()
            if _state_of(now, unit.unit_id, key) != before
        ]
        if len(now.units) != len(plan.units()):
            drift.append(("*", "unit_count", len(plan.units()), len(now.units)))
        if not drift:
            return True
        described = "; ".join(f"{u} {k}: {b!r} -> {a!r}" for u, k, b, a in drift)
        voided = ", ".join(d.actor for d in self._status.approvals)
        self._status.findings.append(
            Finding(
                code="approval-voided",
                severity="warn",
                message=f"the target changed after approval ({described}); "
                f"the approval of {voided} was voided and the change needs a new decision",
            )
        )
        self._ledger.event("approval-voided", f"drift since approval: {described}")
        self._status.approvals = []
        self._decisions = []
        return False

    # ---- decisions -----------------------------------------------------------------------

    @workflow.signal
    async def approve(self, decision: Decision) -> None:
        """An approval (from the web UI or CLI); judged by policy before it counts."""
        await self._decide(
            DecisionRequest(
                actor=decision.actor,
                verdict="approve",
                reason=decision.reason,
                proof=decision.proof,
            )
        )

    @workflow.signal
    async def reject(self, decision: Decision) -> None:
        """A rejection: the change ends with nothing applied."""
        await self._decide(
            DecisionRequest(
                actor=decision.actor, verdict="reject", reason=decision.reason, proof=decision.proof
            )
        )

    @workflow.update
    async def decide(self, request: DecisionRequest) -> DecisionJudgement:
        """Approve or reject, answered with whether the decision counted and why."""
        return await self._decide(request)

    async def _decide(self, request: DecisionRequest) -> DecisionJudgement:
        judgement = self._not_awaiting()
        if judgement is None and request.proof is None:
            judgement = DecisionJudgement(
                counted=False,
                rule="approval.unauthenticated",
                reason="the decision carries no signed proof of who made it; decide through "
                "`changegate approve`, the approval page or the HTTP API",
            )
        if judgement is None and self._status.risk is not None:
            judgement = await self._judge(
                JudgeInput(
                    change_id=self._status.change_id,
                    actor=request.actor,
                    verdict=request.verdict,
                    proof=request.proof,
                    request=self._request,
                    risk=self._status.risk,
                    prior=self._decisions,
                )
            )
            # Judged again after the await: no await sits between this and the count below,
            # so concurrent decisions cannot both pass it.
            judgement = self._not_awaiting() or self._once(judgement, request.verdict)
        assert judgement is not None
        who = judgement.principal
        if not judgement.counted:
            claimed = "" if who else f" (unauthenticated, claiming to be {request.actor!r})"
            self._ledger.event(
                "decision-refused",
                f"{request.verdict}{claimed} not counted ({judgement.rule}): {judgement.reason}",
                actor=who,
            )
            return judgement
        assert who is not None and judgement.nonce is not None and request.proof is not None
        self._nonces.add(judgement.nonce)
        self._decisions.append((who, request.verdict))
        reason = request.proof.reason  # the signed reason, not the payload's
        decision = Decision(actor=who, reason=reason)
        if request.verdict == "approve":
            self._status.approvals.append(decision)
            need = self._status.approvals_required
            self._ledger.event(
                "approved",
                f"{reason or 'approved'} ({len(self._status.approvals)}/{need})",
                actor=who,
            )
        else:
            self._rejection = decision
            self._ledger.event("rejected", reason or "rejected", actor=who)
        return judgement

    async def _judge(self, data: JudgeInput) -> DecisionJudgement:
        try:
            return await self._steps.judge(data)
        except ActivityError as exc:
            # Handlers must not fail the workflow; an unjudged decision simply does not count.
            return DecisionJudgement(
                counted=False, rule="approval.unjudged", reason=failure_message(exc)
            )

    def _once(self, judgement: DecisionJudgement, verdict: DecisionVerdict) -> DecisionJudgement:
        """Refuse a replayed proof, and a second decision of the same kind by one principal."""
        if not judgement.counted:
            return judgement
        if judgement.nonce in self._nonces:
            return judgement.model_copy(
                update={
                    "counted": False,
                    "rule": "approval.replayed",
                    "reason": "this signed decision was already counted once",
                }
            )
        who = (judgement.principal or "").strip().casefold()
        earlier = [v for a, v in self._decisions if a.strip().casefold() == who]
        if earlier and (verdict == "approve" or "reject" in earlier):
            return judgement.model_copy(
                update={
                    "counted": False,
                    "rule": "approval.duplicate",
                    "reason": f"{judgement.principal} already decided ({earlier[0]}) on this "
                    "change; each approver counts once",
                }
            )
        return judgement

    def _not_awaiting(self) -> DecisionJudgement | None:
        if self._status.stage == Stage.AWAITING_APPROVAL and self._status.outcome is None:
            if self._rejection is None:
                return None
            return DecisionJudgement(
                counted=False, rule="approval.decided", reason="the change was already rejected"
            )
        return DecisionJudgement(
            counted=False,
            rule="approval.not_awaiting",
            reason=f"the change is in {self._status.stage.value}, not awaiting approval",
        )

    # ---- stages after approval: the only writes ------------------------------------------

    async def _apply_phase(self, index: int, phase: list[UnitChange], proof: ApprovalProof) -> None:
        if index == 0:
            await self._enter(Stage.CANARY)
        elif self._status.stage != Stage.ROLLOUT:
            await self._enter(Stage.ROLLOUT)
        name = phase[0].phase
        for unit in phase:
            await self._controls.checkpoint(f"{name}: before applying {unit.unit_id}")
            # Recorded before the call: an apply that failed midway may still have landed.
            self._applied.append(unit)
            self._controls.applied_any = True
            result = await self._steps.unit_step(unit, proof)
            if result.conflict:
                # Nothing was written: the unit is not ours to revert.
                self._applied.remove(unit)
                self._ledger.mark(unit.unit_id, "conflict", result.detail)
                self._conflict("apply-conflict", unit, result.state)
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
                )
            self._ledger.mark(unit.unit_id, "applied")
            self._ledger.event("applied", f"{unit.unit_id} ({name})", data=dict(unit.after))
            self._ledger.publish()
        rollout = _effective(self._request, self._status.risk).rollout
        bake = rollout.canary_bake_seconds if index == 0 else rollout.wave_bake_seconds
        await self._controls.bake(bake, f"{name} bake")
        await self._gate(name)

    async def _verify(self, plan: ChangePlan) -> None:
        await self._enter(Stage.VERIFY)
        for unit in plan.units():
            result = await self._steps.read(unit.unit_id, unit.after, f"verify {unit.unit_id}")
            if not result.ok:
                raise Halt(
                    Outcome.ROLLED_BACK,
                    HaltCause.VERIFY_FAILED,
                    f"{unit.unit_id} drifted: {result.detail}",
                )
            self._ledger.mark(unit.unit_id, "verified")
        self._ledger.event("verified", f"{len(plan.units())} units read back as planned")

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
            await self._controls.bake(
                rollout.analysis_interval_seconds, f"{name} analysis interval"
            )
            label = f"{name} analysis {len(measurements) + 1}/{limits.count}"
            try:
                measurement = await self._steps.measure(units, label)
            except ActivityError as exc:
                # A measurement that could not be taken is an error, which the analysis
                # limits judge; it is never by itself a reason to stop.
                measurement = Measurement(phase="error", reason=failure_message(exc))
            measurements.append(measurement)
            self._ledger.event("measurement", f"{name}: {measurement.phase}: {measurement.reason}")
            verdict = evaluate(measurements, limits)
            if verdict is None:
                continue
            self._ledger.event("analysis", f"{name}: {verdict.phase}: {verdict.reason}")
            if verdict.phase == "successful":
                return
            if verdict.phase == "inconclusive":
                self._controls.hold_for_human(
                    f"{name} analysis inconclusive: held for a human; "
                    "resume to continue, abort to roll back"
                )
                await self._controls.checkpoint(f"{name} inconclusive analysis")
                return
            failed = verdict.phase == "failed"
            raise Halt(
                Outcome.ROLLED_BACK,
                HaltCause.HEALTH_FAILED if failed else HaltCause.HEALTH_ERROR,
                f"{name} health {verdict.phase}: {verdict.reason}",
            )

    # ---- rollback: the one place compensation lives --------------------------------------

    async def _rollback(self) -> None:
        """Revert every applied unit, newest first, three-way: a unit at the value we wrote
        is reverted and read back; one at its old value is left; one at any other value
        was changed by someone else and is never overwritten."""
        await self._enter(Stage.ROLLBACK)
        proof = ApprovalProof(approved_by=[d.actor for d in self._status.approvals] or ["system"])
        failed: list[str] = []
        for unit in reversed(self._applied):
            result = await self._steps.unit_step(unit, proof, revert=True)
            if result.skipped:
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
                    self._conflict("rollback-conflict", unit, result.state)
                else:
                    self._ledger.event("revert-failed", f"{unit.unit_id}: {result.detail}")
            self._ledger.publish()
        if failed:
            self._end(
                Outcome.ROLLBACK_FAILED,
                f"{', '.join(failed)} not returned to the old value: a human must act",
            )
        else:
            self._end(Outcome.ROLLED_BACK, f"{len(self._applied)} units reverted and verified")

    def _conflict(self, code: str, unit: UnitChange, now: dict[str, JsonValue]) -> None:
        """Name the unit and its three values: before, what we wrote, what it holds now."""
        found = {k: now.get(k) for k in unit.after}
        message = (
            f"{unit.unit_id}: before {_values(unit.before)}, changegate's value "
            f"{_values(unit.after)}, now {_values(found)}: someone else changed it, so "
            "changegate left it as found; a human must decide which value stands"
        )
        self._status.findings.append(Finding(code=code, severity="block", message=message))
        self._ledger.event(code, message, data={"unit": unit.unit_id, **found})

    # ---- pause, resume, abort, status ----------------------------------------------------

    @workflow.signal
    async def pause(self, control: Control) -> None:
        """Hold at the next safe point (stage boundary, before each unit, inside bakes).

        Honoured at once from anyone (it only makes the change safer); who sent it is
        verified afterwards and recorded either way.
        """
        self._controls.pause(_claimed(control))
        await self._attest(control, "pause")

    @workflow.signal
    async def resume(self, control: Control) -> None:
        """Continue exactly where the change was held: only on a signed request."""
        verdict = await self._verify_control(control, "resume")
        if not verdict.valid or control.proof is None:
            self._ledger.event(
                "resume-refused",
                f"resume claiming to be {control.actor!r} not honoured ({verdict.rule}): "
                f"{verdict.reason}",
            )
            return
        proof = control.proof
        self._controls.resume(
            control.model_copy(update={"actor": proof.principal, "kill_switch": proof.kill_switch})
        )

    @workflow.signal
    async def abort(self, control: Control) -> None:
        """Stop: before any apply nothing is changed; after, every applied unit is reverted.

        Honoured at once from anyone, like pause; the sender is verified and recorded.
        """
        self._controls.abort(_claimed(control))
        await self._attest(control, "abort")

    async def _verify_control(self, control: Control, action: ControlAction) -> AuthorityVerdict:
        check = ControlCheck(change_id=self._status.change_id, action=action, proof=control.proof)
        if control.proof is None:
            return AuthorityVerdict(
                valid=False,
                rule="control.unauthenticated",
                reason=f"the {action} carries no signed proof of who sent it",
            )
        try:
            return await self._steps.verify_control(check)
        except ActivityError as exc:
            return AuthorityVerdict(valid=False, rule="control.unverified", reason=str(exc))

    async def _attest(self, control: Control, action: ControlAction) -> None:
        verdict = await self._verify_control(control, action)
        if not verdict.valid:
            self._ledger.event(
                "control-unverified",
                f"{action} claiming to be {control.actor!r} came without a valid proof "
                f"({verdict.rule}): honoured, since it only makes the change safer",
            )

    @workflow.query
    def status(self) -> ChangeStatus:
        """Everything known about the change right now."""
        return self._status


def _effective(request: ChangeRequest, risk: RiskAssessment | None) -> ChangeRequest:
    """The request with the canary its risk tier demands (never smaller than asked)."""
    if risk is None:
        return request
    rollout = request.rollout.model_copy(
        update={
            "canary_units": max(request.rollout.canary_units, risk.canary_units),
            "canary_bake_seconds": max(
                request.rollout.canary_bake_seconds, risk.canary_bake_seconds
            ),
        }
    )
    return request.model_copy(update={"rollout": rollout})


def _claimed(control: Control) -> Control:
    """The control with its actor as far as it can be trusted before verification."""
    if control.proof is not None:
        return control.model_copy(update={"actor": control.proof.principal})
    return control.model_copy(
        update={"actor": f"{control.actor} (unverified)", "kill_switch": None}
    )


def _values(values: dict[str, JsonValue]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in values.items())


def _state_of(observation: TargetObservation, unit_id: str, key: str) -> JsonValue:
    unit = observation.unit(unit_id)
    return None if unit is None else unit.state.get(key)
