"""Every activity the change workflow runs, with its timeouts, retries and readable summary.

Activities are called by name with their result type, so the workflow's imports hold only
models and pure functions: the implementations (with their HTTP clients and database
drivers) live in `changegate.activities` and only the worker imports them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, JsonValue

    from changegate.models import (
        ApprovalProof,
        Assessment,
        AuditInput,
        AuditReceipt,
        AuthorityVerdict,
        ChangePlan,
        ChangeRequest,
        CloseInput,
        CloseReceipt,
        ControlCheck,
        DecisionJudgement,
        HealthCheck,
        JudgeInput,
        MeasureInput,
        Measurement,
        ObserveInput,
        PlanInput,
        Summary,
        SummaryInput,
        Target,
        TargetObservation,
        TicketCheck,
        UnitChange,
        UnitResult,
        UnitStepInput,
        ValidateInput,
        ValidationReport,
        Verification,
        VerifyAllInput,
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

R = TypeVar("R", bound=BaseModel)


def failure_message(exc: ActivityError) -> str:
    """The message of the application error behind an activity failure."""
    cause = exc.cause
    return cause.message if isinstance(cause, ApplicationError) else str(exc)


def failure_type(exc: ActivityError) -> str | None:
    """The typed error behind an activity failure (its `ApplicationError.type`)."""
    cause = exc.cause
    return cause.type if isinstance(cause, ApplicationError) else None


async def _run(
    name: str,
    arg: BaseModel,
    result: type[R],
    *,
    summary: str,
    retry: RetryPolicy = WAIT_RETRY,
    limit: timedelta = READ_TIMEOUT,
) -> R:
    found: Any = await workflow.execute_activity(
        name,
        arg,
        result_type=result,
        start_to_close_timeout=limit,
        heartbeat_timeout=HEARTBEAT,
        retry_policy=retry,
        summary=summary,
    )
    assert isinstance(found, result)
    return found


class Steps:
    """Runs one change's activities; only `unit_step` reaches a mutating method."""

    def __init__(self, change_id: str, target: Target) -> None:
        """Steps for the change `change_id` on its (canonical) `target`."""
        self._change_id = change_id
        self._target = target

    async def verify_admission(self, data: TicketCheck) -> AuthorityVerdict:
        """Check the admission ticket the workflow was started with."""
        return await _run(
            "verify_admission", data, AuthorityVerdict, summary="verify the admission ticket"
        )

    async def verify_control(self, data: ControlCheck) -> AuthorityVerdict:
        """Check who sent a pause, resume or abort."""
        summary = f"verify the {data.action}'s sender"
        return await _run("verify_control", data, AuthorityVerdict, summary=summary)

    async def observe(self) -> TargetObservation:
        """Read the target (read-only)."""
        data = ObserveInput(target=self._target)
        summary = f"observe {self._target.label()}"
        return await _run("observe_target", data, TargetObservation, summary=summary)

    async def validate(
        self, request: ChangeRequest, observation: TargetObservation
    ) -> ValidationReport:
        """Findings, risk tier and effective rollout (read-only)."""
        data = ValidateInput(change_id=self._change_id, request=request, observation=observation)
        summary = "compare assumptions and context with live state"
        return await _run("validate_change", data, ValidationReport, summary=summary)

    async def assess(self, request: ChangeRequest, observation: TargetObservation) -> Assessment:
        """VALIDATE's report and the plan under the rollout it decides (read-only)."""
        data = ValidateInput(change_id=self._change_id, request=request, observation=observation)
        summary = f"validate against live state and plan {request.change.operation}"
        return await _run("assess_change", data, Assessment, summary=summary)

    async def plan(self, request: ChangeRequest, observation: TargetObservation) -> ChangePlan:
        """Per-unit steps for `request` (read-only)."""
        data = PlanInput(request=request, observation=observation)
        summary = f"plan {request.change.operation}"
        return await _run("plan_change", data, ChangePlan, summary=summary)

    async def summarise(self, data: SummaryInput) -> Summary:
        """The approver's summary."""
        return await _run("render_summary", data, Summary, summary="render the approver's summary")

    async def judge(self, data: JudgeInput) -> DecisionJudgement:
        """Policy's judgement of one decision."""
        summary = f"judge {data.verdict} ({'signed' if data.proof else 'unsigned'})"
        return await _run("judge_decision", data, DecisionJudgement, summary=summary)

    async def unit_step(
        self, unit: UnitChange, proof: ApprovalProof, *, revert: bool = False
    ) -> UnitResult:
        """Apply or revert one unit; a failure comes back as a result that is not ok."""
        verb = "revert" if revert else "apply"
        data = UnitStepInput(
            change_id=self._change_id, target=self._target, unit=unit, approval=proof
        )
        try:
            return await _run(
                "revert_unit" if revert else "apply_unit",
                data,
                UnitResult,
                summary=f"{verb} {unit.unit_id} ({unit.phase})",
                retry=REVERT_RETRY if revert else WRITE_RETRY,
                limit=WRITE_TIMEOUT,
            )
        except ActivityError as exc:
            return UnitResult(
                unit_id=unit.unit_id,
                ok=False,
                detail=failure_message(exc),
                error_type=failure_type(exc),
            )

    async def read(self, unit_id: str, expected: dict[str, JsonValue], label: str) -> UnitResult:
        """Read one unit back and compare it with `expected`."""
        data = VerifyInput(target=self._target, unit_id=unit_id, expected=expected)
        return await _run("verify_unit", data, UnitResult, summary=label)

    async def read_all(self, expected: dict[str, dict[str, JsonValue]]) -> Verification:
        """Read every unit back and compare each with its `expected` values."""
        data = VerifyAllInput(target=self._target, expected=expected)
        summary = f"verify {len(expected)} units"
        return await _run("verify_units", data, Verification, summary=summary)

    async def measure(
        self, unit_ids: list[str], checks: list[HealthCheck], label: str
    ) -> Measurement:
        """One health measurement of the units."""
        data = MeasureInput(
            target_kind=self._target.kind,
            selector=self._target.selector,
            unit_ids=unit_ids,
            checks=checks,
        )
        return await _run("measure_health", data, Measurement, summary=label, retry=READ_RETRY)

    async def record(self, data: AuditInput) -> AuditReceipt:
        """Write what is new in the change's record to the audit store."""
        summary = f"audit: {data.stage}" + (f" {data.outcome}" if data.outcome else "")
        return await _run("record_change", data, AuditReceipt, summary=summary)

    async def close(self, data: CloseInput) -> CloseReceipt:
        """Open the incident an ended change needs."""
        summary = "open an incident if the change needs one"
        return await _run("close_change", data, CloseReceipt, summary=summary)
