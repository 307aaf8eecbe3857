"""RECON and planning: read-only activities over a provider's read-only half."""

from __future__ import annotations

from temporalio import activity

from changegate.activities.failures import as_activity_failure
from changegate.activities.heartbeat import heartbeats
from changegate.models import ChangePlan, ObserveInput, PlanInput, TargetObservation
from changegate.providers import ProviderRegistry


class ReconActivities:
    """Observe a target and plan a change on it, changing nothing."""

    def __init__(self, providers: ProviderRegistry) -> None:
        """Use `providers` through their read-only view only."""
        self._providers = providers

    @activity.defn(name="observe_target")
    @heartbeats
    async def observe_target(self, data: ObserveInput) -> TargetObservation:
        """Read the target's units and their current state."""
        with as_activity_failure():
            return await self._providers.read_only(data.target.kind).observe(data.target)

    @activity.defn(name="plan_change")
    @heartbeats
    async def plan_change(self, data: PlanInput) -> ChangePlan:
        """Planning alone: kept for changes started before it was assessed with VALIDATE."""
        return await self.plan(data)

    async def plan(self, data: PlanInput) -> ChangePlan:
        """Turn the request into per-unit steps grouped into canary and waves."""
        with as_activity_failure():
            provider = self._providers.read_only(data.request.target.kind)
            return await provider.plan(data.request, data.observation)
