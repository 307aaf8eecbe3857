"""Graduated response: inconclusive analysis holds for a human, repeated errors roll back.

The health source is replaced by a test activity registered under the same name
(`measure_health`); everything else, the fleet included, is the real thing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from temporalio import activity
from temporalio.client import Client

from changegate.models import (
    ChangeStatus,
    Control,
    Decision,
    MeasureInput,
    Measurement,
    Outcome,
    Stage,
)
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.worker import running_worker
from tests.support import Fleet, make_request, wait_for_stage, wait_until

pytestmark = pytest.mark.e2e


@asynccontextmanager
async def worker_measuring(
    client: Client, settings: Settings, phase: str
) -> AsyncIterator[ChangeService]:
    @activity.defn(name="measure_health")
    async def measure(data: MeasureInput) -> Measurement:
        return Measurement(phase=phase, reason=f"test source says {phase}")  # type: ignore[arg-type]

    own = settings.model_copy(update={"task_queue": f"graduated-{uuid.uuid4().hex[:6]}"})
    async with running_worker(client, own, replace={"measure_health": measure}):
        changes = ChangeService(client, own)
        try:
            yield changes
        finally:
            changes.close()


async def test_inconclusive_analysis_pauses_for_a_human_who_resumes(
    client: Client, settings: Settings, fleet: Fleet
) -> None:
    async with worker_measuring(client, settings, "inconclusive") as changes:
        change_id = await changes.submit(make_request(service="search", assumptions={}))
        await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
        await changes.approve(change_id, Decision(actor="alice"))

        def holds(status: ChangeStatus) -> int:
            return sum("inconclusive: held for a human" in e.message for e in status.timeline)

        # Every gate (canary, wave-1, wave-2) is inconclusive: each holds until resumed.
        for gate in range(1, 4):

            async def held(gate: int = gate) -> ChangeStatus | None:
                status = await changes.status(change_id)
                return status if status.paused and holds(status) == gate else None

            status = await wait_until(held, within=30, what=f"held at gate {gate}")
            if gate == 1:
                assert status.stage == Stage.CANARY
                assert sum(fleet.writes().values()) == 1  # the canary only, while held
            await changes.resume(change_id, Control(actor="bob", reason="checked by hand"))
        final = await changes.wait(change_id)
    assert final.outcome == Outcome.DONE
    assert [e.actor for e in final.timeline if e.kind == "resumed"] == ["bob"] * 3


async def test_repeated_health_source_errors_roll_back(
    client: Client, settings: Settings, fleet: Fleet
) -> None:
    async with worker_measuring(client, settings, "error") as changes:
        change_id = await changes.submit(
            make_request(service="search", assumptions={}, rollout={"analysis_count": 3})
        )
        await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
        await changes.approve(change_id, Decision(actor="alice"))
        final = await changes.wait(change_id)
    assert final.outcome == Outcome.ROLLED_BACK
    assert final.halt_cause is not None and final.halt_cause.value == "health_error"
    assert "3 health source errors in a row" in (final.halt_reason or "")
    assert all(c["pool_size"] == 20 for c in fleet.configs("search").values())
    assert fleet.writes()["search/search-0"] == 2  # applied, then reverted
