"""The changegate worker: builds providers and health sources and runs the change workflow."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from changegate.activities import (
    HealthActivities,
    ReconActivities,
    RolloutActivities,
    ValidationActivities,
    render_summary,
)
from changegate.health import FleetMetricsSource, HealthSourceRegistry
from changegate.providers import FleetProvider, ProviderRegistry
from changegate.settings import Settings
from changegate.workflows import ChangeWorkflow

log = logging.getLogger(__name__)


def build_activities(settings: Settings) -> list[object]:
    """Every activity, with its dependencies built from `settings`."""
    providers = ProviderRegistry([FleetProvider(settings.fleet_url)])
    sources = HealthSourceRegistry([FleetMetricsSource(settings.fleet_url)])
    recon = ReconActivities(providers)
    rollout = RolloutActivities(providers)
    return [
        recon.observe_target,
        recon.plan_change,
        ValidationActivities().validate_change,
        render_summary,
        rollout.apply_unit,
        rollout.revert_unit,
        rollout.verify_unit,
        HealthActivities(sources).measure_health,
    ]


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox, passing changegate's own modules through (they are deterministic data)."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            "changegate", "pydantic", "pydantic_core", "httpx"
        )
    )


def build_worker(
    client: Client,
    settings: Settings,
    *,
    activities: Sequence[object] | None = None,
    max_concurrent_activities: int = 50,
) -> Worker:
    """A worker on `settings.task_queue` with the change workflow and its activities."""
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[ChangeWorkflow],
        activities=list(activities if activities is not None else build_activities(settings)),  # type: ignore[arg-type]
        workflow_runner=workflow_runner(),
        max_concurrent_activities=max_concurrent_activities,
    )


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Connect to Temporal and run the worker until `stop` is set (or forever)."""
    from changegate.client import connect

    client = await connect(settings)
    worker = build_worker(client, settings)
    log.info("worker polling %s on %s", settings.task_queue, settings.temporal_address)
    async with worker:
        await (stop or asyncio.Event()).wait()
