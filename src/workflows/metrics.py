"""The change workflow's own metrics, recorded through the workflow's replay-safe meter.

`workflow.metric_meter()` records nothing while a history replays, so a worker that picks up
a change after a restart does not count its stages twice. The worker's Temporal runtime
exports them with the SDK's own metrics (see `changegate.observability.runtime`). Every label
is a bounded value: a stage, an outcome, a risk tier, an analysis phase, a target kind, or
the agent id, which policy bounds.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from changegate.models import Outcome, Stage

__all__ = [
    "ANALYSIS_VERDICTS",
    "APPROVAL_WAIT",
    "CHANGES",
    "DURATION_BUCKETS",
    "STAGE_DURATION",
    "ChangeMetrics",
]

CHANGES = "changegate_changes"
"""Counter (exported with `_total`): changes that ended, by outcome, risk, kind and agent."""
STAGE_DURATION = "changegate_stage_duration_seconds"
"""Histogram: how long a change stayed in a stage, by stage."""
APPROVAL_WAIT = "changegate_approval_wait_seconds"
"""Histogram: from asking for approval to the quorum, a rejection or the end, by result."""
ANALYSIS_VERDICTS = "changegate_analysis_verdicts"
"""Counter (exported with `_total`): health-gate verdicts, by stage and phase."""

DURATION_BUCKETS = (
    1.0,
    5.0,
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    14400.0,
    86400.0,
)
"""Seconds: stages and approvals last from seconds to a day, not the SDK's sub-second range."""


class ChangeMetrics:
    """Records one change's stage durations, approval wait, verdicts and outcome."""

    def __init__(self, *, agent: str, kind: str) -> None:
        """Label every series of this change with its `agent` and target `kind`."""
        meter = workflow.metric_meter().with_additional_attributes({"agent": agent, "kind": kind})
        self._changes = meter.create_counter(CHANGES, "Changes that ended, by outcome.")
        self._stage = meter.create_histogram_timedelta(
            STAGE_DURATION, "Time a change spent in a stage."
        )
        self._approval = meter.create_histogram_timedelta(
            APPROVAL_WAIT, "Time from asking for approval to its result."
        )
        self._verdicts = meter.create_counter(ANALYSIS_VERDICTS, "Health-gate verdicts.")

    def left(self, stage: Stage, spent: timedelta, *, result: str) -> None:
        """`stage` lasted `spent`; leaving approval records the wait with its `result`."""
        self._stage.record(max(spent, timedelta(0)), {"stage": stage.value})
        if stage == Stage.AWAITING_APPROVAL:
            self._approval.record(max(spent, timedelta(0)), {"result": result})

    def verdict(self, stage: Stage, phase: str) -> None:
        """A health gate in `stage` reached `phase` (successful, failed, inconclusive, error)."""
        self._verdicts.add(1, {"stage": stage.value, "phase": phase})

    def ended(self, outcome: Outcome, *, risk: str | None) -> None:
        """The change ended with `outcome`, at risk tier `risk` (`none` before VALIDATE)."""
        self._changes.add(1, {"outcome": outcome.value, "risk": risk or "none"})
