"""VALIDATE's context checks, risk tiers and approvals with quorum, on the real stack.

The worker runs under tests/policy.yaml: a maintenance window on inventory, checkout
depending on payments, a flag on payments from a file context source, approvers with roles.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import yaml
from temporalio.client import Client

from changegate.api.views import change_page
from changegate.models import Control, Decision, Outcome, Stage
from changegate.policy import Policy
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.worker import running_worker
from tests.support import TEST_POLICY, Fleet, make_request, wait_for_stage, wait_until

pytestmark = pytest.mark.e2e

OPS = Control(actor="test", reason="cleanup")


async def test_maintenance_window_blocks_before_any_write(
    changes: ChangeService, fleet: Fleet
) -> None:
    change_id = await changes.submit(make_request(service="inventory", assumptions={}))
    final = await changes.wait(change_id)
    assert final.outcome == Outcome.BLOCKED
    [finding] = [f for f in final.findings if f.code == "maintenance-window"]
    assert finding.severity == "block" and "inventory-db-upgrade" in finding.message
    assert final.summary is not None and "inventory-db-upgrade" in final.summary
    assert fleet.write_log() == []


async def test_blast_radius_blocks_and_a_narrower_selector_passes(
    changes: ChangeService, fleet: Fleet
) -> None:
    wide = await changes.submit(
        make_request(agent_id="narrow-agent", service="search", assumptions={})
    )
    final = await changes.wait(wide)
    assert final.outcome == Outcome.BLOCKED
    [finding] = [f for f in final.findings if f.code == "blast-radius"]
    assert finding.actual == 3 and finding.expected == 2 and "instances:" in finding.message
    request = make_request(agent_id="narrow-agent", service="search", assumptions={})
    request.target.selector["instances"] = "search-0,search-1"
    narrow = await changes.submit(request)
    status = await wait_for_stage(changes, narrow, Stage.AWAITING_APPROVAL)
    assert [u.unit_id for u in status.units] == ["search-0", "search-1"]
    await changes.abort(narrow, OPS)
    await changes.wait(narrow)
    assert fleet.write_log() == []


async def test_flag_from_a_context_source_is_shown_first(
    changes: ChangeService, fleet: Fleet
) -> None:
    change_id = await changes.submit(make_request(service="payments", assumptions={}))
    status = await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    [flag] = [f for f in status.findings if f.code == "flag"]
    assert "payments.strict_idempotency" in flag.message
    assert status.summary is not None
    assert status.summary.index("payments.strict_idempotency") < status.summary.index(
        "WHAT IT WANTS"
    )
    await changes.abort(change_id, OPS)
    await changes.wait(change_id)


async def test_active_change_on_a_dependency_demands_an_extra_approver(
    changes: ChangeService, fleet: Fleet
) -> None:
    dependency = await changes.submit(make_request(service="payments", assumptions={}))
    await wait_for_stage(changes, dependency, Stage.AWAITING_APPROVAL)
    try:
        change_id = await changes.submit(make_request())
        status = await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
        [finding] = [f for f in status.findings if f.code == "dependency-change-active"]
        assert dependency in finding.message
        assert status.approvals_required == 2
        first = await changes.approve(change_id, Decision(actor="alice"))
        assert first.counted
        assert (await changes.status(change_id)).stage == Stage.AWAITING_APPROVAL
        dup = await changes.approve(change_id, Decision(actor="alice"))
        assert not dup.counted and dup.rule == "approval.duplicate"
        assert (await changes.approve(change_id, Decision(actor="bob"))).counted
        final = await changes.wait(change_id)
        assert final.outcome == Outcome.DONE
        assert [d.actor for d in final.approvals] == ["alice", "bob"]
    finally:
        await changes.abort(dependency, OPS)
        await changes.wait(dependency)


async def test_high_risk_needs_two_approvers_with_the_role(
    changes: ChangeService, fleet: Fleet
) -> None:
    request = make_request(service="search", assumptions={})
    request.risk_hint = "high"
    change_id = await changes.submit(request)
    status = await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    assert status.risk is not None and status.risk.tier == "high"
    assert status.approvals_required == 2 and status.risk.roles == ["sre"]
    assert "tier high: 2 distinct approver(s) holding one of: sre" in (status.summary or "")

    wrong_role = await changes.approve(change_id, Decision(actor="carol"))
    assert not wrong_role.counted and wrong_role.rule == "approval.role"
    stranger = await changes.approve(change_id, Decision(actor="mallory"))
    assert not stranger.counted and stranger.rule == "approval.not_an_approver"
    self_approval = await changes.approve(change_id, Decision(actor="agent-7"))
    assert not self_approval.counted and self_approval.rule == "approval.self"
    assert (await changes.approve(change_id, Decision(actor="alice"))).counted
    assert (await changes.approve(change_id, Decision(actor="bob"))).counted
    final = await changes.wait(change_id)
    assert final.outcome == Outcome.DONE
    refused = [e for e in final.timeline if e.kind == "decision-refused"]
    assert [e.actor for e in refused] == ["carol", "mallory", "agent-7"]

    late = await changes.status(change_id)
    assert late.outcome == Outcome.DONE


async def test_drift_between_approval_and_apply_voids_the_approval(
    changes: ChangeService, fleet: Fleet
) -> None:
    change_id = await changes.submit(make_request(assumptions={"unit_count": 4}))
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    # Someone changes an instance by hand after the summary was written.
    fleet.set("checkout", "checkout-1", f"hand-{uuid.uuid4().hex}", pool_size=30)
    assert (await changes.approve(change_id, Decision(actor="alice"))).counted

    async def voided() -> object:
        status = await changes.status(change_id)
        voids = [f for f in status.findings if f.code == "approval-voided"]
        waiting = status.stage == Stage.AWAITING_APPROVAL and not status.approvals
        return status if voids and waiting else None

    status = await wait_until(voided, within=30, what="approval voided")
    assert "checkout-1 pool_size: 20 -> 30" in status.findings[0].message
    assert fleet.write_log()[-1]["idempotency_key"].startswith("hand-")  # nothing else written
    assert status.plan is not None
    assert status.plan.unit("checkout-1").before == {"pool_size": 30}

    assert (await changes.approve(change_id, Decision(actor="alice"))).counted
    final = await changes.wait(change_id)
    assert final.outcome == Outcome.DONE
    kinds = [e.kind for e in final.timeline]
    assert kinds.count("approved") == 2 and "approval-voided" in kinds


@pytest.fixture
async def strict_worker(
    client: Client, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Settings]:
    """A second worker, on its own queue, whose policy blocks stale assumptions."""
    policy = tmp_path_factory.mktemp("strict") / "policy.yaml"
    # The session's test policy (its limits fit a whole test session), stale assumptions
    # blocking, and no context sources (their relative paths would not resolve here).
    data = yaml.safe_load(TEST_POLICY.read_text())
    data["findings"] = {"stale-assumption": "block"}
    data.pop("context_sources", None)
    policy.write_text(yaml.safe_dump(data))
    strict = settings.model_copy(
        update={"task_queue": f"strict-{uuid.uuid4().hex[:6]}", "policy_file": policy}
    )
    async with running_worker(client, strict):
        yield strict


async def test_stale_assumption_can_be_made_to_block_before_any_write(
    client: Client, strict_worker: Settings, fleet: Fleet
) -> None:
    # A stale belief about a key the change does not write (it writes pool_size).
    fleet.set("checkout", "checkout-3", f"drift-{uuid.uuid4().hex}", timeout_ms=950)
    changes = ChangeService(client, strict_worker)
    try:
        change_id = await changes.submit(
            make_request(parameters={"pool_size": 23}, assumptions={"units.*.timeout_ms": 800})
        )
        final = await changes.wait(change_id)
    finally:
        changes.close()
    assert final.outcome == Outcome.BLOCKED
    [finding] = final.findings
    assert finding.code == "stale-assumption" and finding.severity == "block"
    assert finding.actual == 950
    assert len(fleet.write_log()) == 1  # only the hand edit above


async def test_a_change_that_would_lower_what_the_agent_believes_it_raises_is_blocked(
    changes: ChangeService, fleet: Fleet
) -> None:
    fleet.set("checkout", "checkout-2", f"hotfix-{uuid.uuid4().hex}", pool_size=28)
    change_id = await changes.submit(
        make_request(assumptions={"unit_count": 4, "units.*.pool_size": 20})
    )
    final = await changes.wait(change_id)
    assert final.outcome == Outcome.BLOCKED
    assert not any(e.kind == "approved" for e in final.timeline)
    assert [f.code for f in final.findings] == ["stale-written-key", "direction-reversed"]
    assert all(f.severity == "block" for f in final.findings)
    reversed_ = final.findings[1]
    assert reversed_.path == "units.checkout-2.pool_size" and reversed_.actual == 28
    assert "would lower it" in reversed_.message and "observe_target" in reversed_.message
    assert final.summary is not None
    assert final.summary.splitlines()[0].endswith(
        "(4 units): pool_size 20 → 24 on 3, 28 → 24 on checkout-2"
    )
    page = change_page(final, policy=Policy(), now=datetime.now(UTC), viewer="alice")
    assert page["real_change"] == "pool_size 20 → 24 on 3, 28 → 24 on checkout-2"
    assert len(fleet.write_log()) == 1  # only the hand edit above
    assert fleet.configs("checkout")["checkout-2"]["pool_size"] == 28


async def test_the_agent_that_observes_and_resubmits_with_the_true_state_runs(
    changes: ChangeService, fleet: Fleet
) -> None:
    fleet.set("checkout", "checkout-2", f"hotfix-{uuid.uuid4().hex}", pool_size=28)
    stale = await changes.submit(
        make_request(assumptions={"unit_count": 4, "units.*.pool_size": 20})
    )
    blocked = await changes.wait(stale)
    assert blocked.outcome == Outcome.BLOCKED and blocked.observation is not None
    keep = [u.unit_id for u in blocked.observation.units if u.state["pool_size"] == 20]
    request = make_request(assumptions={"unit_count": 3, "units.*.pool_size": 20})
    request.target.selector["instances"] = ",".join(keep)
    change_id = await changes.submit(request)
    status = await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    assert status.findings == []
    await changes.approve(change_id, Decision(actor="alice"))
    assert (await changes.wait(change_id)).outcome == Outcome.DONE
    pools = {unit: c["pool_size"] for unit, c in fleet.configs("checkout").items()}
    assert pools == {"checkout-0": 24, "checkout-1": 24, "checkout-2": 28, "checkout-3": 24}
