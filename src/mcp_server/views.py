"""What the tools answer: small pydantic views an LLM reads as structured output."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, JsonValue

from changegate.models import (
    ChangeRef,
    ChangeStatus,
    Finding,
    Outcome,
    Stage,
    TargetObservation,
    TimelineEvent,
    UnitObservation,
    UnitState,
)

TIMELINE_TAIL = 10
"""How many of the latest timeline events `get_change` returns."""


class Proposal(BaseModel):
    """A change that was admitted and started."""

    change_id: str
    web_ui_url: str = Field(description="The change's page in the Temporal web UI.")
    stage: Stage = Stage.RECON
    next_step: str


class ChangeView(BaseModel):
    """One change as its proposing agent may see it."""

    change_id: str
    target: str
    operation: str
    stage: Stage
    outcome: Outcome | None
    paused: bool
    summary: str | None
    findings: list[Finding]
    units: list[UnitState]
    timeline: list[TimelineEvent] = Field(description="The latest events, oldest first.")
    approval_deadline: datetime | None
    halt_reason: str | None
    web_ui_url: str

    @classmethod
    def of(cls, status: ChangeStatus, *, web_ui_url: str) -> ChangeView:
        """The agent's view of a full status."""
        return cls(
            change_id=status.change_id,
            target=status.request.target.label(),
            operation=status.request.change.operation,
            stage=status.stage,
            outcome=status.outcome,
            paused=status.paused,
            summary=status.summary,
            findings=status.findings,
            units=status.units,
            timeline=status.timeline[-TIMELINE_TAIL:],
            approval_deadline=status.approval_deadline,
            halt_reason=status.halt_reason,
            web_ui_url=web_ui_url,
        )


class WaitResult(BaseModel):
    """The change once it ended, or where it still was when the wait ran out."""

    finished: bool
    message: str
    change: ChangeView


class Withdrawal(BaseModel):
    """A withdrawal that was sent: the change ends ABORTED at its next safe point."""

    change_id: str
    message: str


def progress_message(status: ChangeStatus) -> str:
    """One line on where a running change is, for a progress notification."""
    line = f"{status.change_id} at {status.stage.value}" + (" (paused)" if status.paused else "")
    if status.countdown is not None:
        line += f", {status.countdown.label}"
    if status.stage == Stage.AWAITING_APPROVAL:
        line += f", {len(status.approvals)}/{status.approvals_required} approval(s)"
    if status.timeline:
        line += f"; last: {status.timeline[-1].message}"
    return line


class ChangeList(BaseModel):
    """The caller's changes, newest first."""

    agent_id: str | None = Field(description="Whose changes; null for an admin listing all.")
    changes: list[ChangeRef]


class Observation(BaseModel):
    """A read-only snapshot of a target, with the paths assumptions are written in."""

    target_label: str
    observed_at: datetime
    unit_count: int
    units: list[UnitObservation]
    paths: dict[str, JsonValue] = Field(
        description="Every observation path and its value now: use these keys in `assumptions`."
    )

    @classmethod
    def of(cls, observation: TargetObservation) -> Observation:
        """The view of what a provider's `observe` returned."""
        return cls(
            target_label=observation.target_label,
            observed_at=observation.observed_at,
            unit_count=len(observation.units),
            units=observation.units,
            paths=observation.paths(),
        )


__all__ = [
    "TIMELINE_TAIL",
    "ChangeList",
    "ChangeView",
    "Observation",
    "Proposal",
    "WaitResult",
    "Withdrawal",
    "progress_message",
]
