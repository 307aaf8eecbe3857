"""Stages, outcomes, decisions and the status a running change reports."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field, JsonValue

from changegate.models.authority import AdmissionTicket, ControlProof, DecisionProof
from changegate.models.health import Measurement, Verdict
from changegate.models.notice import NoticeKind
from changegate.models.observation import Finding, TargetObservation
from changegate.models.plan import ChangePlan, UnitState
from changegate.models.request import ChangeRequest, Contract
from changegate.models.verdicts import DecisionVerdict, RiskAssessment


class Stage(StrEnum):
    """The stage a change is in; the last one it reached once it has ended."""

    RECON = "RECON"
    VALIDATE = "VALIDATE"
    SUMMARY = "SUMMARY"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    CANARY = "CANARY"
    ROLLOUT = "ROLLOUT"
    VERIFY = "VERIFY"
    ROLLBACK = "ROLLBACK"
    ENDED = "ENDED"


class Outcome(StrEnum):
    """How a change ended."""

    DONE = "DONE"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    BLOCKED = "BLOCKED"
    ABORTED = "ABORTED"
    ROLLED_BACK = "ROLLED_BACK"
    ROLLBACK_FAILED = "ROLLBACK_FAILED"


class HaltCause(StrEnum):
    """Why a change stopped short of DONE: what incident classification starts from."""

    BLOCKED = "blocked"
    EXPIRED = "expired"
    REJECTED = "rejected"
    ABORTED = "aborted"
    CANCELLED = "cancelled"
    APPLY_FAILED = "apply_failed"
    VERIFY_FAILED = "verify_failed"
    HEALTH_FAILED = "health_failed"
    HEALTH_ERROR = "health_error"


class Decision(Contract):
    """An approver's answer, carried by the approve and reject signals.

    Only `proof`, signed by the front door, says who decided: a decision without a valid
    proof is recorded as refused and never counts, whatever `actor` claims.
    """

    actor: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=2000)
    proof: DecisionProof | None = None


class Control(Contract):
    """An operator's pause, resume or abort, with who and why.

    `kill_switch` names the switch (`global`, `agent:<id>`) that sent it: a change paused by a
    switch is resumed only when that switch is released.
    """

    actor: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=2000)
    kill_switch: str | None = None
    proof: ControlProof | None = None
    """Signed by the front door; without it a pause or abort still holds or stops the
    change (that only makes it safer), but a resume is refused."""


class DecisionRecord(Contract):
    """One decision as the workflow judged it: who (as signed), what, and whether it counted.

    `seq` is the index of its timeline event, which keys it in the audit store.
    """

    seq: int
    at: datetime
    verdict: DecisionVerdict
    principal: str | None = None
    """The signed principal; None when the decision came without a valid proof."""
    claimed: str
    """The name the payload gave (the same as `principal` when the proof is valid)."""
    reason: str = ""
    counted: bool
    rule: str | None = None


class AnalysisRecord(Contract):
    """One health gate's analysis: its verdict and every measurement behind it."""

    gate: str
    verdict: Verdict


class DecisionRequest(Contract):
    """The `decide` update: approve or reject, answered with whether it counted."""

    actor: str = Field(min_length=1, max_length=200)
    verdict: DecisionVerdict
    reason: str = Field(default="", max_length=2000)
    proof: DecisionProof | None = None


class Countdown(Contract):
    """A bake or analysis interval under way: what it waits for and when it ends.

    While the change is paused the clock stops: `ends_at` is None and `remaining_seconds`
    holds what is left; otherwise `remaining_seconds` is what was left at `started_at`.
    """

    label: str
    seconds: float
    remaining_seconds: float
    started_at: datetime
    ends_at: datetime | None = None


class TimelineEvent(Contract):
    """One thing that happened to a change, in workflow time."""

    at: datetime
    stage: Stage
    kind: str
    message: str
    actor: str | None = None
    data: dict[str, JsonValue] = Field(default_factory=dict)


class ChangeInput(Contract):
    """The workflow's input: the request, the id it runs under, and admission's ticket."""

    change_id: str
    request: ChangeRequest
    ticket: AdmissionTicket | None = None
    notify: list[NoticeKind] = Field(default_factory=list)
    """The notices some channel takes, as the front door's settings say: the workflow sends
    only these, so a deployment without channels sends none."""


class ChangeStatus(Contract):
    """Everything known about a change; the status query and the workflow result."""

    change_id: str
    request: ChangeRequest
    stage: Stage
    outcome: Outcome | None = None
    paused: bool = False
    observation: TargetObservation | None = None
    findings: list[Finding] = Field(default_factory=list)
    summary: str | None = None
    plan: ChangePlan | None = None
    units: list[UnitState] = Field(default_factory=list)
    approvals: list[Decision] = Field(default_factory=list)
    decisions: list[DecisionRecord] = Field(default_factory=list)
    analyses: list[AnalysisRecord] = Field(default_factory=list)
    measurement: Measurement | None = None
    """The latest health measurement, with every metric against its threshold."""
    countdown: Countdown | None = None
    """The bake or analysis interval the change is waiting out, if any."""
    timeline: list[TimelineEvent] = Field(default_factory=list)
    approval_deadline: datetime | None = None
    risk: RiskAssessment | None = None
    approvals_required: int = 1
    incident_id: str | None = None
    halt_cause: HaltCause | None = None
    halt_reason: str | None = None
    halt_error: str | None = None
    """The typed error that stopped the change (`TargetTimeout`, `RolloutFailed`, ...)."""

    @property
    def ended(self) -> bool:
        """True once the change has a terminal outcome."""
        return self.outcome is not None
