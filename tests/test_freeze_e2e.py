"""A SEV2 freezes the targets that depend on its own, until someone closes it.

The test policy's topology says checkout depends on payments. A change on payments that
got past its canary before failing opens a SEV2 (`changegate.incidents.classify`); a
change on checkout that reaches VALIDATE while it is open is BLOCKED, its final line
naming the incident and the dependency, and a new checkout change is refused at the front
door. Closing the incident lifts both.
"""

from __future__ import annotations

import uuid

import pytest

from changegate.admission.gate import AdmissionRefused
from changegate.models import ChangeStatus, Control, Outcome, Stage
from changegate.service import ChangeService
from tests.support import (
    Fleet,
    approve_fully,
    as_user,
    make_request,
    wait_for_stage,
    wait_until,
)
from tests.test_cli_e2e import cli, cli_json

pytestmark = pytest.mark.e2e

PAYMENTS = "fleet:service=payments"
CHECKOUT = "fleet:service=checkout"


async def drive_to_sev2(changes: ChangeService, fleet: Fleet) -> ChangeStatus:
    """Roll a payments change back after its first wave: beyond the canary, so a SEV2.

    payments-1 runs with a small pool (latency 71 ms); the change lowers the request timeout
    to 60 ms, harmless on the canary payments-0 (40 ms) and fatal on payments-1, which the
    first wave after the canary reaches.
    """
    fleet.set("payments", "payments-1", f"small-pool-{uuid.uuid4().hex}", pool_size=12)
    request = make_request(
        service="payments",
        agent_id=f"tuner-{uuid.uuid4().hex[:4]}",
        parameters={"timeout_ms": 60},
        assumptions={"unit_count": 3},
    )
    change_id = await changes.submit(request)
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    await approve_fully(changes, change_id)
    final = await changes.wait(change_id)
    assert final.outcome == Outcome.ROLLED_BACK, final.timeline[-4:]
    touched = {u.unit_id: u.phase for u in final.units if u.status != "pending"}
    assert any(phase != "canary" for phase in touched.values()), touched
    return final


async def test_a_sev2_blocks_its_dependents_until_closed(
    changes: ChangeService, fleet: Fleet, cli_env: dict[str, str]
) -> None:
    admin = as_user(cli_env, "ops-admin")
    # A checkout change, held before VALIDATE while the payments change runs and fails.
    waiting = await changes.submit(
        make_request(service="checkout", agent_id=f"scaler-{uuid.uuid4().hex[:4]}")
    )
    await changes.pause(waiting, Control(actor="ops-admin", reason="hold for the test"))

    async def holding() -> str | None:
        status = await changes.status(waiting)
        return next((e.message for e in status.timeline if e.kind == "held"), None)

    where = await wait_until(holding, what="the checkout change holds")
    assert where in ("paused at RECON", "paused at VALIDATE"), where

    sev2 = await drive_to_sev2(changes, fleet)
    incident_id = sev2.incident_id
    assert incident_id is not None
    shown = await cli_json(admin, "incident", "list", "--open")
    [listed] = [i for i in shown if i["incident_id"] == incident_id]
    assert listed["severity"] == "SEV2" and listed["target_label"] == PAYMENTS

    await changes.resume(waiting, Control(actor="ops-admin", reason="go on"))
    blocked = await changes.wait(waiting)
    assert blocked.outcome == Outcome.BLOCKED
    final_line = blocked.timeline[-1].message
    expected = (
        f"BLOCKED: open incident {incident_id} (SEV2) on {PAYMENTS}, a dependency of {CHECKOUT}"
    )
    assert final_line.startswith(expected), final_line
    assert [f.code for f in blocked.findings if f.severity == "block"] == ["open-incident"]

    # The front door refuses a new change on checkout for the same reason.
    with pytest.raises(AdmissionRefused) as refused:
        await changes.submit(make_request(service="checkout"))
    assert refused.value.rule == "incident_freeze"
    assert f"{incident_id} (SEV2) on {PAYMENTS}, a dependency of {CHECKOUT}" in refused.value.reason

    closed = await cli(admin, "incident", "close", incident_id)
    assert closed.returncode == 0, closed.stderr

    # Closing lifts the freeze: the same change is admitted and validated without it.
    after = await changes.submit(make_request(service="checkout"))
    status = await wait_for_stage(changes, after, Stage.AWAITING_APPROVAL)
    assert "open-incident" not in [f.code for f in status.findings]
    await changes.abort(after, Control(actor="ops-admin", reason="test done"))
    ended = await wait_until(lambda: _ended(changes, after), what="the aborted change ends")
    assert ended.outcome == Outcome.ABORTED


async def _ended(changes: ChangeService, change_id: str) -> ChangeStatus | None:
    status = await changes.status(change_id)
    return status if status.ended else None
