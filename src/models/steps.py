"""Inputs and outputs of the activities: one model in, one model out."""

from __future__ import annotations

from pydantic import Field, JsonValue

from changegate.models.authority import DecisionProof
from changegate.models.observation import Finding, TargetObservation, ValidationReport
from changegate.models.plan import ChangePlan, UnitChange
from changegate.models.request import AgentIdentity, ChangeRequest, Contract, RiskLevel, Target
from changegate.models.status import ChangeStatus, DecisionRecord, TimelineEvent
from changegate.models.verdicts import DecisionVerdict, RiskAssessment


class ObserveInput(Contract):
    """Input of `observe_target`."""

    target: Target


class PlanInput(Contract):
    """Input of `plan_change` and `validate_change`."""

    request: ChangeRequest
    observation: TargetObservation


class SummaryInput(Contract):
    """Input of `render_summary`."""

    change_id: str
    request: ChangeRequest
    observation: TargetObservation
    report: ValidationReport
    plan: ChangePlan


class Summary(Contract):
    """The human-readable summary an approver decides from."""

    headline: str
    text: str


class ApprovalProof(Contract):
    """Who approved; a mutating activity refuses to run without one."""

    approved_by: list[str] = Field(min_length=1)


class UnitStepInput(Contract):
    """Input of `apply_unit` and `revert_unit`: one unit, one step, one idempotency key."""

    change_id: str
    target: Target
    unit: UnitChange
    approval: ApprovalProof

    def idempotency_key(self, step: str) -> str:
        """The key that makes this unit's step happen at most once on the target."""
        return f"{self.change_id}:{self.unit.unit_id}:{step}"


class VerifyInput(Contract):
    """Input of `verify_unit`: the state the unit should be in."""

    target: Target
    unit_id: str
    expected: dict[str, JsonValue]


class VerifyAllInput(Contract):
    """Input of `verify_units`: every planned unit and the state it should be in."""

    target: Target
    expected: dict[str, dict[str, JsonValue]]
    """Unit id → the values it should hold, in plan order."""


class UnitResult(Contract):
    """What a unit step found: whether the unit is where it should be, and its state.

    A step reads the unit before it writes (three-way): `skipped` means the unit already
    held the step's target value and nothing was written; `conflict` means it held neither
    the value before nor after the change (someone else changed it), and nothing was written.
    """

    unit_id: str
    ok: bool
    state: dict[str, JsonValue] = Field(default_factory=dict)
    detail: str = ""
    skipped: bool = False
    conflict: bool = False
    error_type: str | None = None
    """The typed error behind a failed step (e.g. `TargetTimeout`), for classification."""


class Verification(Contract):
    """Output of `verify_units`: one result per unit, in the order asked."""

    results: list[UnitResult]


class ValidateInput(Contract):
    """Input of `assess_change` (and `validate_change`): the request and what recon saw, for
    this change id."""

    change_id: str
    request: ChangeRequest
    observation: TargetObservation


class Assessment(Contract):
    """Output of `assess_change`: VALIDATE's report and the plan made with its rollout."""

    report: ValidationReport
    plan: ChangePlan


class JudgeInput(Contract):
    """Input of `judge_decision`: one decision and what it is judged against."""

    change_id: str
    actor: str
    verdict: DecisionVerdict
    proof: DecisionProof | None = None
    agent: AgentIdentity
    """Who proposed the change (the proposer may not approve it)."""
    risk: RiskAssessment
    prior: list[tuple[str, DecisionVerdict]] = Field(default_factory=list)


class AuditInput(Contract):
    """Input of `record_change`: what is new in a change's record since the last write."""

    change_id: str
    request: ChangeRequest | None = None
    """Only on a change's first write (admission usually stored it already)."""
    stage: str
    outcome: str | None = None
    risk: RiskLevel | None = None
    first_seq: int = 0
    events: list[TimelineEvent] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    decisions: list[DecisionRecord] = Field(default_factory=list)


class AuditReceipt(Contract):
    """How many timeline events the store now holds for the change."""

    recorded_through: int


class CloseInput(Contract):
    """Input of `close_change`: the ended change's whole status, and (from changes that
    close in one write) what the audit store lacks of its record, outcome included."""

    status: ChangeStatus
    audit: AuditInput | None = None


class CloseReceipt(Contract):
    """The incident opened for the change, if it needed one."""

    incident_id: str | None = None
    recorded_through: int | None = None
    """With `CloseInput.audit`: how many timeline events the store now holds."""
