"""Pause, resume, abort and reject on the real dev server, each leaving nothing half-applied."""

from __future__ import annotations

import asyncio

import pytest

from changegate.models import Control, Decision, Outcome, Stage
from changegate.service import ChangeService
from tests.support import Fleet, make_request, wait_for_stage, wait_until

pytestmark = pytest.mark.e2e

OPS = Control(actor="oncall-bob", reason="checking a dashboard")


async def test_reject_ends_with_nothing_applied(changes: ChangeService, fleet: Fleet) -> None:
    change_id = await changes.submit(make_request())
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    await changes.reject(change_id, Decision(actor="alice", reason="not during peak"))
    final = await changes.wait(change_id)
    assert final.outcome == Outcome.REJECTED
    assert "alice" in final.timeline[-1].message
    assert fleet.write_log() == []


async def test_the_proposing_agent_cannot_approve_its_own_change(
    changes: ChangeService, fleet: Fleet
) -> None:
    change_id = await changes.submit(make_request(agent_id="agent-9"))
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    await changes.approve(change_id, Decision(actor="agent-9", reason="lgtm"))
    status = await wait_until(
        lambda: _with_event(changes, change_id, "decision-refused"), what="refusal"
    )
    assert status.approvals == [] and status.stage == Stage.AWAITING_APPROVAL
    await changes.abort(change_id, OPS)
    assert (await changes.wait(change_id)).outcome == Outcome.ABORTED
    assert fleet.write_log() == []


async def test_abort_before_apply_changes_nothing(changes: ChangeService, fleet: Fleet) -> None:
    change_id = await changes.submit(make_request())
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    await changes.abort(change_id, OPS)
    final = await changes.wait(change_id)
    assert final.outcome == Outcome.ABORTED
    assert "nothing was applied" in final.timeline[-1].message
    assert fleet.write_log() == []


async def test_abort_after_apply_rolls_back_every_applied_unit(
    changes: ChangeService, fleet: Fleet
) -> None:
    change_id = await changes.submit(make_request(rollout={"wave_bake_seconds": 30}))
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    await changes.approve(change_id, Decision(actor="alice"))
    # Wait until the first wave is applied and baking, then abort.
    await wait_until(
        lambda: _applied_count(changes, change_id, 3), within=30, what="wave-1 applied"
    )
    await changes.abort(change_id, OPS)
    final = await changes.wait(change_id)

    assert final.outcome == Outcome.ROLLED_BACK
    applied = [u.unit_id for u in final.units if u.status == "reverted"]
    assert applied == ["checkout-0", "checkout-1", "checkout-2"]
    assert [u.status for u in final.units if u.unit_id == "checkout-3"] == ["pending"]
    assert all(c["pool_size"] == 20 for c in fleet.configs("checkout").values())
    # Reverted in reverse order of application.
    reverts = [w["instance"] for w in fleet.write_log() if w["idempotency_key"].endswith("revert")]
    assert reverts == ["checkout-2", "checkout-1", "checkout-0"]
    assert fleet.writes()["checkout/checkout-3"] == 0


async def test_pause_inside_a_bake_holds_and_resume_continues_there(
    changes: ChangeService, fleet: Fleet
) -> None:
    change_id = await changes.submit(make_request(rollout={"canary_bake_seconds": 2.0}))
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    await changes.approve(change_id, Decision(actor="alice"))
    await wait_until(lambda: _applied_count(changes, change_id, 1), what="canary applied")
    await changes.pause(change_id, OPS)

    # Held well past the bake's length: still in CANARY, nothing beyond the canary written.
    await asyncio.sleep(3.5)
    held = await changes.status(change_id)
    assert held.stage == Stage.CANARY and held.paused
    assert sum(fleet.writes().values()) == 1

    await changes.resume(change_id, OPS)
    final = await changes.wait(change_id)
    assert final.outcome == Outcome.DONE
    kinds = [e.kind for e in final.timeline]
    assert kinds.index("paused") < kinds.index("resumed")
    assert all(v == 1 for k, v in fleet.writes().items() if k.startswith("checkout/"))


async def _applied_count(changes: ChangeService, change_id: str, count: int) -> bool:
    status = await changes.status(change_id)
    return sum(u.status == "applied" for u in status.units) >= count


async def _with_event(changes: ChangeService, change_id: str, kind: str) -> object:
    status = await changes.status(change_id)
    return status if any(e.kind == kind for e in status.timeline) else None
