"""Reading workflow histories: count the Temporal work and derive the bare script from it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory

from bench.bare import BareScript, BareStep

AUDIT_ACTIVITIES = frozenset({"record_change", "close_change"})


@dataclass(frozen=True)
class EventCounts:
    """How much Temporal work one workflow run did, as seen in its history."""

    activities: int
    audit_activities: int
    """Activities that write the audit store (`record_change`, `close_change`)."""
    timers: int
    timer_seconds: float
    signals: int
    upserts: int
    timer_wait: float
    """Seconds from each fired timer's start to its firing, as the server recorded them."""
    workflow_tasks: int
    events: int
    history_bytes: int

    def matched(self) -> tuple[int, int, float, int, int]:
        """The numbers the baseline must reproduce exactly."""
        return (
            self.activities,
            self.timers,
            round(self.timer_seconds, 3),
            self.signals,
            self.upserts,
        )


def count_events(history: WorkflowHistory) -> EventCounts:
    """Count activities, timers (and their total duration), signals, upserts and tasks."""
    kinds = Counter(e.event_type for e in history.events)
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    timer_seconds = sum(
        _seconds(e) for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    )
    started = {
        e.event_id: e.event_time.ToDatetime()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    }
    timer_wait = sum(
        (
            e.event_time.ToDatetime() - started[e.timer_fired_event_attributes.started_event_id]
        ).total_seconds()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED
    )
    return EventCounts(
        activities=len(scheduled),
        audit_activities=sum(1 for name in scheduled if name in AUDIT_ACTIVITIES),
        timers=kinds[EventType.EVENT_TYPE_TIMER_STARTED],
        timer_seconds=timer_seconds,
        signals=kinds[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED],
        upserts=kinds[EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES],
        timer_wait=timer_wait,
        workflow_tasks=kinds[EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED],
        events=len(history.events),
        history_bytes=sum(e.ByteSize() for e in history.events),
    )


_PATCH_ATTRIBUTE = "TemporalChangeVersion"
"""The search attribute the SDK sets itself for a patch; the bare workflow's patch sets it."""


def script_from_history(history: WorkflowHistory) -> BareScript:
    """The bare script with the same commands, in the same order, as `history`.

    A timer that was later cancelled is the approval wait (a `wait_condition` with a timeout
    that a signal ended): it becomes a `signal` step waiting for as many signals as had arrived
    when the timer was cancelled. Any other timer fired and becomes a plain `timer` step.
    """
    steps: list[BareStep] = []
    timers: dict[int, BareStep] = {}
    signals = 0
    for event in history.events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            steps.append(
                BareStep(
                    kind="activity",
                    seconds=attrs.start_to_close_timeout.ToTimedelta().total_seconds(),
                    label=attrs.activity_type.name,
                )
            )
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            step = BareStep(kind="timer", seconds=_seconds(event), label=_summary(event))
            timers[event.event_id] = step
            steps.append(step)
        elif kind == EventType.EVENT_TYPE_TIMER_CANCELED:
            step = timers[event.timer_canceled_event_attributes.started_event_id]
            step.kind = "signal"
            step.signals = signals
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            signals += 1
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            # A `workflow.patched()` call: the bare workflow makes one too (same marker and
            # the SDK's own TemporalChangeVersion upsert), with an id of its own for each.
            patches = sum(1 for s in steps if s.kind == "patch")
            steps.append(BareStep(kind="patch", label=f"bench-patch-{patches + 1}"))
        elif kind == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            keys = sorted(k for k in fields.indexed_fields if k != _PATCH_ATTRIBUTE)
            if keys:
                steps.append(BareStep(kind="upsert", keys=keys))
    waits = [s for s in steps if s.kind == "signal"]
    if signals and (not waits or waits[-1].signals != signals):
        raise ValueError(
            f"the history has {signals} signal(s) that no cancelled timer waited for; "
            "the bare script cannot reproduce it"
        )
    return BareScript(steps=steps)


def _seconds(event: HistoryEvent) -> float:
    return float(
        event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds()
    )


def _summary(event: HistoryEvent) -> str:
    summary = event.user_metadata.summary
    return summary.data.decode(errors="replace").strip('"') if summary.data else ""
