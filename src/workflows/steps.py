"""Every activity the change workflow runs, with its timeouts, retries and readable summary."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import JsonValue

    from changegate.activities import (
        AuditActivities,
        AuthorityActivities,
        DecisionActivities,
        HealthActivities,
        ReconActivities,
        RolloutActivities,
        ValidationActivities,
        render_summary,
    )
    from changegate.models import (
        ApprovalProof,
        AuditInput,
        AuditReceipt,
        AuthorityVerdict,
        ChangePlan,
        ChangeRequest,
        CloseInput,
        CloseReceipt,
        ControlCheck,
        DecisionJudgement,
        EscalationInput,
        JudgeInput,
        MeasureInput,
        Measurement,
        ObserveInput,
        PlanInput,
        Summary,
        SummaryInput,
        TargetObservation,
        TicketCheck,
        UnitChange,
        UnitResult,
        UnitStepInput,
        ValidateInput,
        ValidationReport,
        VerifyInput,
    )
    from changegate.workflows.options import (
        HEARTBEAT,
        READ_RETRY,
        READ_TIMEOUT,
        REVERT_RETRY,
        WAIT_RETRY,
        WRITE_RETRY,
        WRITE_TIMEOUT,
    )


def failure_message(exc: ActivityError) -> str:
    """The message of the application error behind an activity failure."""
    cause = exc.cause
    return cause.message if isinstance(cause, ApplicationError) else str(exc)


class Steps:
    """Runs one change's activities; only `apply` and `revert` reach a mutating method."""

    def __init__(self, change_id: str, request: ChangeRequest) -> None:
        """Steps for the change `change_id`."""
        self._change_id = change_id
        self._request = request

    async def verify_admission(self, data: TicketCheck) -> AuthorityVerdict:
        """Check the admission ticket the workflow was started with."""
        result: AuthorityVerdict = await workflow.execute_activity_method(
            AuthorityActivities.verify_admission,
            data,
            start_to_close_timeout=READ_TIMEOUT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=WAIT_RETRY,
            summary="verify the admission ticket",
        )
        return result

    async def verify_control(self, data: ControlCheck) -> AuthorityVerdict:
        """Check who sent a pause, resume or abort."""
        result: AuthorityVerdict = await workflow.execute_activity_method(
            AuthorityActivities.verify_control,
            data,
            start_to_close_timeout=READ_TIMEOUT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=WAIT_RETRY,
            summary=f"verify the {data.action}'s sender",
        )
        return result

    async def observe(self) -> TargetObservation:
        """Read the target (read-only)."""
        target = self._request.target
        result: TargetObservation = await workflow.execute_activity_method(
            ReconActivities.observe_target,
            ObserveInput(target=target),
            start_to_close_timeout=READ_TIMEOUT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=WAIT_RETRY,
            summary=f"observe {target.label()}",
        )
        return result

    async def validate(self, observation: TargetObservation) -> ValidationReport:
        """Findings and risk tier (read-only)."""
        result: ValidationReport = await workflow.execute_activity_method(
            ValidationActivities.validate_change,
            ValidateInput(
                change_id=self._change_id, request=self._request, observation=observation
            ),
            start_to_close_timeout=READ_TIMEOUT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=WAIT_RETRY,
            summary="compare assumptions and context with live state",
        )
        return result

    async def plan(self, request: ChangeRequest, observation: TargetObservation) -> ChangePlan:
        """Per-unit steps for `request` (read-only)."""
        result: ChangePlan = await workflow.execute_activity_method(
            ReconActivities.plan_change,
            PlanInput(request=request, observation=observation),
            start_to_close_timeout=READ_TIMEOUT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=WAIT_RETRY,
            summary=f"plan {request.change.operation}",
        )
        return result

    async def summarise(self, data: SummaryInput) -> Summary:
        """The approver's summary."""
        result: Summary = await workflow.execute_activity(
            render_summary,
            data,
            start_to_close_timeout=READ_TIMEOUT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=WAIT_RETRY,
            summary="render the approver's summary",
        )
        return result

    async def judge(self, data: JudgeInput) -> DecisionJudgement:
        """Policy's judgement of one decision."""
        result: DecisionJudgement = await workflow.execute_activity_method(
            DecisionActivities.judge_decision,
            data,
            start_to_close_timeout=READ_TIMEOUT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=WAIT_RETRY,
            summary=f"judge {data.verdict} ({'signed' if data.proof else 'unsigned'})",
        )
        return result

    async def escalate(self, data: EscalationInput) -> None:
        """Tell someone the change still waits for approval; a failure is only logged."""
        try:
            await workflow.execute_activity_method(
                DecisionActivities.escalate,
                data,
                start_to_close_timeout=READ_TIMEOUT,
                heartbeat_timeout=HEARTBEAT,
                retry_policy=READ_RETRY,
                summary=f"escalate: {data.seconds_left:.0f}s left to approve",
            )
        except ActivityError as exc:
            workflow.logger.warning("escalation failed: %s", failure_message(exc))

    async def unit_step(
        self, unit: UnitChange, proof: ApprovalProof, *, revert: bool = False
    ) -> UnitResult:
        """Apply or revert one unit; a failure comes back as a result that is not ok."""
        verb = "revert" if revert else "apply"
        data = UnitStepInput(
            change_id=self._change_id, target=self._request.target, unit=unit, approval=proof
        )
        try:
            result: UnitResult = await workflow.execute_activity_method(
                RolloutActivities.revert_unit if revert else RolloutActivities.apply_unit,
                data,
                start_to_close_timeout=WRITE_TIMEOUT,
                heartbeat_timeout=HEARTBEAT,
                retry_policy=REVERT_RETRY if revert else WRITE_RETRY,
                summary=f"{verb} {unit.unit_id} ({unit.phase})",
            )
        except ActivityError as exc:
            return UnitResult(unit_id=unit.unit_id, ok=False, detail=failure_message(exc))
        return result

    async def read(self, unit_id: str, expected: dict[str, JsonValue], label: str) -> UnitResult:
        """Read one unit back and compare it with `expected`."""
        result: UnitResult = await workflow.execute_activity_method(
            RolloutActivities.verify_unit,
            VerifyInput(target=self._request.target, unit_id=unit_id, expected=expected),
            start_to_close_timeout=READ_TIMEOUT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=WAIT_RETRY,
            summary=label,
        )
        return result

    async def measure(self, unit_ids: list[str], label: str) -> Measurement:
        """One health measurement of the units."""
        result: Measurement = await workflow.execute_activity_method(
            HealthActivities.measure_health,
            MeasureInput(
                target_kind=self._request.target.kind,
                selector=self._request.target.selector,
                unit_ids=unit_ids,
                checks=self._request.health_checks,
            ),
            start_to_close_timeout=READ_TIMEOUT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=READ_RETRY,
            summary=label,
        )
        return result

    async def record(self, data: AuditInput) -> AuditReceipt:
        """Write what is new in the change's record to the audit store."""
        result: AuditReceipt = await workflow.execute_activity_method(
            AuditActivities.record_change,
            data,
            start_to_close_timeout=READ_TIMEOUT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=WAIT_RETRY,
            summary=f"audit: {data.stage}" + (f" {data.outcome}" if data.outcome else ""),
        )
        return result

    async def close(self, data: CloseInput) -> CloseReceipt:
        """Open the incident an ended change needs."""
        result: CloseReceipt = await workflow.execute_activity_method(
            AuditActivities.close_change,
            data,
            start_to_close_timeout=READ_TIMEOUT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=WAIT_RETRY,
            summary="open an incident if the change needs one",
        )
        return result
