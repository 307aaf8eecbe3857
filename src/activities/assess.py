"""VALIDATE and planning in one read-only activity: the plan takes the rollout that
VALIDATE's risk tier gives the change, so they run back to back anyway."""

from __future__ import annotations

from temporalio import activity

from changegate.activities.heartbeat import heartbeats
from changegate.activities.recon import ReconActivities
from changegate.activities.validation import ValidationActivities
from changegate.models import Assessment, PlanInput, ValidateInput


class AssessActivities:
    """Judges a change against live state and plans it, changing nothing."""

    def __init__(self, validation: ValidationActivities, recon: ReconActivities) -> None:
        """Judge with `validation`; plan through `recon`'s read-only providers."""
        self._validation = validation
        self._recon = recon

    @activity.defn(name="assess_change")
    @heartbeats
    async def assess_change(self, data: ValidateInput) -> Assessment:
        """VALIDATE's report, then the plan under the rollout that report decided."""
        report = await self._validation.report(data)
        rollout = report.rollout or data.request.rollout
        request = data.request.model_copy(update={"rollout": rollout})
        plan = await self._recon.plan(PlanInput(request=request, observation=data.observation))
        return Assessment(report=report, plan=plan)
