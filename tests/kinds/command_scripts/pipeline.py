"""A worker and a front door for the http and command kinds' end-to-end tests.

Until the worker takes a kind registry, the kinds' providers and health sources are
registered by replacing the activities that use them (`running_worker(replace=...)`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from uuid import uuid4

from temporalio.client import Client

from changegate.activities import HealthActivities, ReconActivities, RolloutActivities
from changegate.health import HealthSourceRegistry
from changegate.kinds.base import TargetKind
from changegate.kinds.registry import KindRegistry
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.worker import running_worker

POLICY = Path(__file__).parent / "policy.yaml"


@asynccontextmanager
async def kinds_pipeline(
    client: Client, data_dir: Path, kind: TargetKind
) -> AsyncIterator[ChangeService]:
    """The front door and a worker on a task queue of their own, knowing `kind`."""
    settings = Settings(
        temporal_address=client.service_client.config.target_host,
        task_queue=f"kinds-{uuid4().hex[:8]}",
        data_dir=data_dir,
        policy_file=POLICY,
        reconcile_interval_seconds=0,
    )
    kinds = KindRegistry([kind])
    providers = kinds.providers(settings)
    sources = HealthSourceRegistry([kind.health_source(settings)])  # type: ignore[list-item]
    recon = ReconActivities(providers)
    rollout = RolloutActivities(providers)
    replace = {
        "observe_target": recon.observe_target,
        "plan_change": recon.plan_change,
        "apply_unit": rollout.apply_unit,
        "revert_unit": rollout.revert_unit,
        "verify_unit": rollout.verify_unit,
        "measure_health": HealthActivities(sources).measure_health,
    }
    changes = ChangeService(client, settings, kinds=kinds)
    try:
        async with running_worker(client, settings, replace=replace):
            yield changes
    finally:
        changes.close()
        await providers.aclose()
        await sources.aclose()
