"""The changegate worker: builds providers and health sources and runs the change workflow."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from changegate.activities import (
    AuditActivities,
    AuthorityActivities,
    DecisionActivities,
    HealthActivities,
    ReconActivities,
    RolloutActivities,
    ValidationActivities,
    context_sources,
    render_summary,
)
from changegate.authority import Signer, load_signing_key, policy_digest
from changegate.health import (
    FleetMetricsSource,
    HealthSource,
    HealthSourceRegistry,
    PrometheusSource,
)
from changegate.policy import Policy, load_policy
from changegate.providers import FleetProvider, ProviderRegistry
from changegate.settings import Settings
from changegate.store import Store, open_store
from changegate.workflows import ChangeWorkflow

log = logging.getLogger(__name__)


@dataclass
class Dependencies:
    """What the activities need, built once per worker from the settings."""

    providers: ProviderRegistry
    sources: HealthSourceRegistry
    policy: Policy
    store: Store
    signer: Signer
    escalation_webhook: str | None = None
    policy_dir: Path | None = None

    @classmethod
    def build(cls, settings: Settings) -> Dependencies:
        """Providers and health sources for every target kind, policy and the audit store."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            providers=ProviderRegistry([FleetProvider(settings.fleet_url)]),
            sources=HealthSourceRegistry([_fleet_health(settings)]),
            policy=load_policy(settings.policy_file),
            store=open_store(settings.store_url()),
            signer=Signer(load_signing_key(settings)),
            escalation_webhook=settings.escalation_webhook,
            policy_dir=settings.policy_file.parent if settings.policy_file else None,
        )

    def activities(self) -> list[Callable[..., Any]]:
        """Every activity, bound to these dependencies."""
        recon = ReconActivities(self.providers)
        rollout = RolloutActivities(self.providers)
        audit = AuditActivities(self.store)
        decisions = DecisionActivities(
            policy=self.policy, signer=self.signer, escalation_webhook=self.escalation_webhook
        )
        authority = AuthorityActivities(
            signer=self.signer, policy_digest=policy_digest(self.policy)
        )
        return [
            authority.verify_admission,
            recon.observe_target,
            recon.plan_change,
            ValidationActivities(
                policy=self.policy,
                store=self.store,
                sources=context_sources(self.policy, base=self.policy_dir),
            ).validate_change,
            render_summary,
            rollout.apply_unit,
            rollout.revert_unit,
            rollout.verify_unit,
            HealthActivities(self.sources).measure_health,
            audit.record_change,
            audit.close_change,
            decisions.judge_decision,
            decisions.escalate,
        ]

    async def aclose(self) -> None:
        """Close the providers' and sources' HTTP clients."""
        await self.providers.aclose()
        await self.sources.aclose()
        self.store.close()


def _fleet_health(settings: Settings) -> HealthSource:
    if settings.prometheus_url:
        return PrometheusSource(settings.prometheus_url, max_age_seconds=30)
    return FleetMetricsSource(settings.fleet_url)


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox, passing changegate's own modules through (they are deterministic data)."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            "changegate", "pydantic", "pydantic_core", "httpx"
        )
    )


@asynccontextmanager
async def running_worker(
    client: Client,
    settings: Settings,
    *,
    max_concurrent_activities: int = 50,
    replace: Mapping[str, Callable[..., Any]] | None = None,
) -> AsyncIterator[Worker]:
    """A running worker on `settings.task_queue`; its dependencies are closed on exit.

    `replace` registers other implementations under activity names (for tests that need a
    health source to misbehave, say); everything else is the real thing.
    """
    deps = Dependencies.build(settings)
    replaced = dict(replace or {})
    activities = [fn for fn in deps.activities() if _activity_name(fn) not in replaced] + list(
        replaced.values()
    )
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[ChangeWorkflow],
        activities=activities,
        workflow_runner=workflow_runner(),
        max_concurrent_activities=max_concurrent_activities,
    )
    try:
        async with worker:
            yield worker
    finally:
        await deps.aclose()


def _activity_name(fn: Callable[..., Any]) -> str:
    definition = activity._Definition.from_callable(fn)
    return definition.name if definition and definition.name else fn.__name__


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Connect to Temporal and run the worker until `stop` is set (or forever)."""
    from changegate.service import connect

    client = await connect(settings)
    async with running_worker(client, settings):
        log.info("worker polling %s on %s", settings.task_queue, settings.temporal_address)
        await (stop or asyncio.Event()).wait()
