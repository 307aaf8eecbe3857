"""The workflow's record of a change: status, timeline and per-unit states, kept in one place."""

from __future__ import annotations

import textwrap

from pydantic import JsonValue
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from changegate.models import (
        AuditInput,
        ChangeInput,
        ChangePlan,
        ChangeStatus,
        Outcome,
        Stage,
        TimelineEvent,
        UnitState,
        UnitStatus,
    )
    from changegate.workflows.metrics import ChangeMetrics
    from changegate.workflows.options import (
        CHANGE_AGENT,
        CHANGE_OUTCOME,
        CHANGE_RISK,
        CHANGE_STAGE,
    )


# Events the audit store should hold without waiting for the next stage.
_URGENT = frozenset({"approved", "rejected", "decision-refused", "abort", "paused"})

# The web UI shows current details in a narrow pane: the summary is hard-wrapped to this.
DETAILS_WIDTH = 88


class Ledger:
    """Holds the `ChangeStatus` the query returns: the timeline, stage and outcome move only
    through here (with their search attributes and the web UI's details); the stage
    machine's helpers set the typed fields (findings, approvals, decisions, analyses)."""

    def __init__(self, data: ChangeInput) -> None:
        """Start a change in RECON with an empty timeline."""
        self.status = ChangeStatus(
            change_id=data.change_id, request=data.request, stage=Stage.RECON
        )
        # Changes started without search attributes (a namespace that lacks them) stay so.
        self._searchable = workflow.info().typed_search_attributes.get(CHANGE_AGENT) is not None
        self._recorded = 0
        self._recorded_stage: Stage | None = None
        self._entered = workflow.now()
        self._ending: str | None = None
        self.metrics = ChangeMetrics(
            agent=data.request.agent.agent_id, kind=data.request.target.kind
        )

    def event(
        self,
        kind: str,
        message: str,
        *,
        actor: str | None = None,
        data: dict[str, JsonValue] | None = None,
    ) -> None:
        """Append one timeline event at the current workflow time."""
        self.status.timeline.append(
            TimelineEvent(
                at=workflow.now(),
                stage=self.status.stage,
                kind=kind,
                message=message,
                actor=actor,
                data=data or {},
            )
        )
        workflow.logger.info("%s: %s", kind, message)

    def enter(self, stage: Stage) -> None:
        """Move to `stage`, record it, and make it searchable and visible in the web UI."""
        self._leave(result="approved")
        self.status.stage = stage
        self.event("stage", f"entered {stage.value}")
        if self._searchable:
            workflow.upsert_search_attributes([CHANGE_STAGE.value_set(stage.value)])
        self.publish()

    def finish(self, outcome: Outcome, message: str) -> None:
        """Record the terminal outcome."""
        self._leave(result=outcome.value.lower())
        self.metrics.ended(outcome, risk=self.status.risk.tier if self.status.risk else None)
        self.status.stage = Stage.ENDED
        self.status.outcome = outcome
        self.status.paused = False
        self._ending = message
        self.event("outcome", f"{outcome.value}: {message}")
        if self._searchable:
            workflow.upsert_search_attributes(
                [
                    CHANGE_STAGE.value_set(Stage.ENDED.value),
                    CHANGE_OUTCOME.value_set(outcome.value),
                ]
            )
        self.publish()

    def _leave(self, *, result: str) -> None:
        """The current stage is over: record how long it lasted (`result` ends an approval)."""
        now = workflow.now()
        self.metrics.left(self.status.stage, now - self._entered, result=result)
        self._entered = now

    def tag_risk(self, tier: str) -> None:
        """Make the change's risk tier searchable."""
        if self._searchable:
            workflow.upsert_search_attributes([CHANGE_RISK.value_set(tier)])

    def behind(self) -> bool:
        """The audit trail's rule for changes started before writes were batched at the
        moments that matter: a new stage, a decision, or an outcome the store lacks."""
        s = self.status
        if s.stage != self._recorded_stage or (s.outcome and self._recorded < len(s.timeline)):
            return True
        return any(e.kind in _URGENT for e in s.timeline[self._recorded :])

    def ended(self, outcome: Outcome) -> ChangeStatus:
        """The status as it will read once it ends with `outcome` (for the incident)."""
        return self.status.model_copy(update={"stage": Stage.ENDED, "outcome": outcome})

    def unrecorded(self) -> AuditInput:
        """What the audit store does not have yet: the stage and the events since last time."""
        s = self.status
        return AuditInput(
            change_id=s.change_id,
            request=s.request if self._recorded_stage is None else None,
            stage=s.stage.value,
            outcome=s.outcome.value if s.outcome else None,
            risk=s.risk.tier if s.risk else None,
            first_seq=self._recorded,
            events=s.timeline[self._recorded :],
            findings=s.findings,
            decisions=[d for d in s.decisions if d.seq >= self._recorded],
        )

    def recorded(self, through: int, stage: Stage) -> None:
        """The store holds the timeline up to `through`, and `stage`."""
        self._recorded = max(self._recorded, through)
        self._recorded_stage = stage

    def adopt_plan(self, plan: ChangePlan) -> None:
        """Take the plan and list every unit as pending."""
        self.status.plan = plan
        self.status.units = [UnitState(unit_id=u.unit_id, phase=u.phase) for u in plan.units()]

    def mark(self, unit_id: str, status: UnitStatus, detail: str | None = None) -> None:
        """Set one unit's state."""
        for unit in self.status.units:
            if unit.unit_id == unit_id:
                unit.status = status
                unit.detail = detail
        self.publish()

    def publish(self) -> None:
        """Show the web UI's current details: the outcome and why it ended (once ended) or the
        stage, then each unit's state, then the summary hard-wrapped in a fenced block."""
        workflow.set_current_details(current_details(self.status, ending=self._ending))


def current_details(status: ChangeStatus, *, ending: str | None = None) -> str:
    """Markdown for the web UI: it renders line breaks but never wraps a long line."""
    s = status
    head = f"**{s.outcome.value if s.outcome else s.stage.value}**"
    if s.paused:
        head += " (paused)"
    parts = [head]
    if s.outcome is not None:
        if s.halt_reason:
            parts.append(f"halted: {s.halt_reason}")
        if ending and ending != s.halt_reason:
            parts.append(f"ended: {ending}")
    if s.units:
        parts.append("units:\n" + "\n".join(f"- {u.unit_id}: {u.status}" for u in s.units))
    if s.summary:
        parts.append(f"```\n{_hard_wrap(s.summary)}\n```")
    return "\n\n".join(parts)


def _hard_wrap(text: str) -> str:
    """Each line cut at `DETAILS_WIDTH`, continuations indented like the line they continue."""
    lines: list[str] = []
    for line in text.rstrip("\n").splitlines():
        indent = line[: len(line) - len(line.lstrip())]
        lines.extend(
            textwrap.wrap(
                line,
                width=DETAILS_WIDTH,
                subsequent_indent=indent + "  ",
                break_long_words=True,
                break_on_hyphens=False,
            )
            or [""]
        )
    return "\n".join(lines)
