"""The baseline: a bare Temporal workflow that replays a ChangeWorkflow's shape with no-op work.

`BareWorkflow` walks a `BareScript` (derived by `bench.history.script_from_history` from one
real ChangeWorkflow history) step by step: the same activities in the same order, timers of the
same durations, the approval wait as a `wait_condition` with the same timeout that the signal
cancels, and the same search attribute upserts. Its activity does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from temporalio import activity, workflow
from temporalio.common import SearchAttributeKey, SearchAttributeUpdate

StepKind = Literal["activity", "timer", "signal", "upsert", "patch"]


@dataclass
class BareStep:
    """One command of the script: an activity, a timer, a signal wait, an upsert or a patch
    marker."""

    kind: StepKind
    seconds: float = 0.0
    """Timer duration, signal-wait timeout, or activity start-to-close timeout."""
    signals: int = 0
    """For `signal`: how many signals must have arrived before the wait ends."""
    keys: list[str] = field(default_factory=list)
    """For `upsert`: the keyword search attributes to set."""
    label: str = ""
    """What the step stands for in the ChangeWorkflow (activity type, timer summary)."""


@dataclass
class BareScript:
    """The whole shape of one ChangeWorkflow run."""

    steps: list[BareStep]


@dataclass
class BareInput:
    """Input of one bare workflow run."""

    script: BareScript
    value: str = "bench"


@activity.defn(name="bare_noop")
async def bare_noop(index: int) -> int:
    """Do nothing and echo the step index."""
    return index


@workflow.defn(name="BareWorkflow")
class BareWorkflow:
    """Executes a `BareScript`: same Temporal commands as a ChangeWorkflow, no real work."""

    def __init__(self) -> None:
        """Start with no signal received and not waiting."""
        self._signals = 0
        self._waiting = False

    @workflow.run
    async def run(self, data: BareInput) -> str:
        """Run every step in order and return DONE."""
        for index, step in enumerate(data.script.steps):
            if step.kind == "activity":
                await workflow.execute_activity(
                    bare_noop,
                    index,
                    start_to_close_timeout=timedelta(seconds=step.seconds or 30),
                )
            elif step.kind == "timer":
                await workflow.sleep(step.seconds)
            elif step.kind == "signal":
                self._waiting = True
                needed = step.signals
                try:
                    await workflow.wait_condition(
                        lambda needed=needed: self._signals >= needed,  # type: ignore[misc]
                        timeout=step.seconds,
                    )
                except TimeoutError:
                    return f"EXPIRED waiting for signal {needed}"
                finally:
                    self._waiting = False
            elif step.kind == "upsert":
                updates: list[SearchAttributeUpdate[str]] = [
                    SearchAttributeKey.for_keyword(key).value_set(data.value) for key in step.keys
                ]
                workflow.upsert_search_attributes(updates)
            elif step.kind == "patch":
                workflow.patched(step.label)
        return "DONE"

    @workflow.signal
    def proceed(self) -> None:
        """The stand-in for an approval."""
        self._signals += 1

    @workflow.query
    def waiting(self) -> bool:
        """True while the workflow waits for a signal."""
        return self._waiting
