"""SUMMARY as an activity: kept for changes started before the workflow rendered it itself."""

from __future__ import annotations

from temporalio import activity

from changegate.activities.heartbeat import heartbeats
from changegate.models import Summary, SummaryInput
from changegate.summary import render


@activity.defn(name="render_summary")
@heartbeats
async def render_summary(data: SummaryInput) -> Summary:
    """Render the human-readable summary of a change."""
    return render(data)
