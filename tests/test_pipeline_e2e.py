"""The whole pipeline on the real Temporal dev server against the real fleet process."""

from __future__ import annotations

import pytest

from changegate.models import Decision, Outcome, Stage
from changegate.service import ChangeService
from tests.support import Fleet, make_request, wait_for_stage

pytestmark = pytest.mark.e2e

APPROVER = Decision(actor="alice", reason="looks right")


async def test_good_change_is_applied_everywhere_once_and_only_after_approval(
    changes: ChangeService, fleet: Fleet
) -> None:
    change_id = await changes.submit(make_request(parameters={"pool_size": 24}))
    waiting = await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)

    # Recon, validation and summary ran; the fleet saw no write at all.
    assert fleet.write_log() == []
    assert waiting.summary is not None and "pool_size" in waiting.summary
    assert [u.status for u in waiting.units] == ["pending"] * 4

    await changes.approve(change_id, APPROVER)
    final = await changes.wait(change_id)

    assert final.outcome == Outcome.DONE, final.timeline
    assert all(c["pool_size"] == 24 for c in fleet.configs("checkout").values())
    writes = fleet.writes()
    assert {k: v for k, v in writes.items() if k.startswith("checkout/")} == {
        f"checkout/checkout-{i}": 1 for i in range(4)
    }
    assert all(v == 0 for k, v in writes.items() if not k.startswith("checkout/"))
    assert [u.status for u in final.units] == ["verified"] * 4
    # Canary first, then the waves, in plan order.
    applied = [e["instance"] for e in fleet.write_log()]
    assert applied == [u.unit_id for u in final.plan.units()]  # type: ignore[union-attr]
    assert [p[0].phase for p in final.plan.phases] == ["canary", "wave-1", "wave-2"]  # type: ignore[union-attr]


async def test_degrading_change_rolls_back_and_only_the_canary_was_written(
    changes: ChangeService, fleet: Fleet
) -> None:
    change_id = await changes.submit(
        make_request(parameters={"version": "1.5.0-rc1"}, assumptions={"units.*.version": "1.4.2"})
    )
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    await changes.approve(change_id, APPROVER)
    final = await changes.wait(change_id)

    assert final.outcome == Outcome.ROLLED_BACK, final.timeline
    assert all(c["version"] == "1.4.2" for c in fleet.configs("checkout").values())
    writes = fleet.writes()
    # The canary was written twice (apply, revert); no other instance was ever written.
    assert writes["checkout/checkout-0"] == 2
    assert all(v == 0 for k, v in writes.items() if k != "checkout/checkout-0")
    canary = next(u for u in final.units if u.unit_id == "checkout-0")
    assert canary.status == "reverted"
    assert any(e.kind == "analysis" and "failed" in e.message for e in final.timeline)


async def test_stale_assumption_is_a_finding_in_the_summary(
    changes: ChangeService, fleet: Fleet
) -> None:
    # A stale belief about a key the change does not write is shown, not blocking.
    fleet.set("checkout", "checkout-2", "drift-1", timeout_ms=900)
    change_id = await changes.submit(
        make_request(assumptions={"unit_count": 4, "units.*.timeout_ms": 800})
    )
    status = await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)

    [finding] = status.findings
    assert finding.code == "stale-assumption"
    assert finding.path == "units.*.timeout_ms"
    assert finding.expected == 800 and finding.actual == 900
    assert status.summary is not None
    head = status.summary.split("WHAT IT WANTS")[0]
    assert "WHAT THE AGENT DID NOT KNOW" in head and "units.*.timeout_ms" in head
    await changes.reject(change_id, Decision(actor="alice", reason="stale"))
    assert (await changes.wait(change_id)).outcome == Outcome.REJECTED


async def test_unknown_service_is_blocked_with_a_named_reason(
    changes: ChangeService, fleet: Fleet
) -> None:
    change_id = await changes.submit(make_request(service="nope"))
    final = await changes.wait(change_id)
    assert final.outcome == Outcome.BLOCKED
    assert final.findings[0].code == "recon-failed"
    assert "nope" in final.findings[0].message
    assert fleet.write_log() == []
