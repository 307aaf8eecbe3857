"""Kill switches against several changes rolling out at once, on the real stack."""

from __future__ import annotations

import asyncio
import time

import pytest

from changegate.models import ChangeStatus, Decision, Outcome, Stage
from changegate.service import ChangeService, Operations
from tests.support import Fleet, make_request, wait_for_stage, wait_until

pytestmark = pytest.mark.e2e

SERVICES = {"checkout": 4, "search": 3, "payments": 3}
SLOW = {"canary_bake_seconds": 1, "wave_bake_seconds": 30}


async def rolling_out(
    changes: ChangeService, *, agent_id: str = "agent-7", wave_bake: float = 30
) -> dict[str, str]:
    """One change per service, each approved and past its canary, by service."""
    ids = {
        service: await changes.submit(
            make_request(
                service=service,
                assumptions={"unit_count": units},
                rollout={**SLOW, "wave_bake_seconds": wave_bake},
                agent_id=agent_id,
            )
        )
        for service, units in SERVICES.items()
    }
    for change_id in ids.values():
        await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
        # checkout depends on payments: each sees the other active and needs two approvers.
        await changes.approve(change_id, Decision(actor="alice"))
        await changes.approve(change_id, Decision(actor="bob"))
    for change_id in ids.values():
        await wait_until(
            lambda change_id=change_id: _applied(changes, change_id, 2),
            within=60,
            what=f"{change_id} past its canary",
        )
    return ids


async def _applied(changes: ChangeService, change_id: str, count: int) -> bool:
    status = await changes.status(change_id)
    return sum(u.status == "applied" for u in status.units) >= count


async def test_global_abort_halts_every_rollout_and_reverts_every_applied_unit(
    changes: ChangeService, fleet: Fleet
) -> None:
    ids = await rolling_out(changes)
    before = {cid: await changes.status(cid) for cid in ids.values()}
    applied = {
        cid: [u.unit_id for u in s.units if u.status == "applied"] for cid, s in before.items()
    }
    assert all(len(units) >= 2 for units in applied.values()), applied

    started = time.monotonic()
    report = await Operations(changes).engage(
        "global", "abort", actor="oncall", reason="error budget burning"
    )
    finals: list[ChangeStatus] = await asyncio.gather(*(changes.wait(c) for c in ids.values()))
    seconds = time.monotonic() - started
    print(f"\nkill switch (abort): {len(finals)} changes halted and rolled back in {seconds:.2f}s")

    assert set(ids.values()) <= set(report.reached)
    assert [f.outcome for f in finals] == [Outcome.ROLLED_BACK] * 3
    for final in finals:
        reverted = sorted(u.unit_id for u in final.units if u.status == "reverted")
        assert reverted == applied[final.change_id]
        assert "kill switch global (abort)" in (final.halt_reason or "")
    for service in SERVICES:
        assert all(c["pool_size"] == 20 for c in fleet.configs(service).values()), service


async def test_agent_pause_holds_only_that_agent_and_release_resumes(
    changes: ChangeService, fleet: Fleet
) -> None:
    ids = await rolling_out(changes, agent_id="agent-paused", wave_bake=2)
    ops = Operations(changes)
    report = await ops.engage("agent:agent-paused", "pause", actor="oncall", reason="look first")
    assert set(ids.values()) <= set(report.reached)

    async def all_held() -> bool:
        statuses = [await changes.status(c) for c in ids.values()]
        return all(s.paused for s in statuses)

    await wait_until(all_held, within=15, what="every change held")
    human = await changes.status(ids["checkout"])
    # A human resume cannot undo a kill switch's hold.
    from changegate.models import Control

    await changes.resume(ids["checkout"], Control(actor="impatient", reason="go"))
    await wait_until(
        lambda: _has_event(changes, ids["checkout"], "resume-refused"), what="resume refused"
    )
    assert (await changes.status(ids["checkout"])).paused and human.paused

    await ops.release("agent:agent-paused", actor="oncall", reason="all clear")
    finals = await asyncio.gather(*(changes.wait(c) for c in ids.values()))
    assert [f.outcome for f in finals] == [Outcome.DONE] * 3


async def _has_event(changes: ChangeService, change_id: str, kind: str) -> bool:
    return any(e.kind == kind for e in (await changes.status(change_id)).timeline)
