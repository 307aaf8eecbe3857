"""A worker and a front door for the http and command kinds' end-to-end tests: both know
only the kind under test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from uuid import uuid4

from temporalio.client import Client

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
    changes = ChangeService(client, settings, kinds=kinds)
    try:
        async with running_worker(client, settings, kinds=kinds):
            yield changes
    finally:
        changes.close()
