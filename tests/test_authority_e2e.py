"""The trust model under attack, through real processes on the real dev server.

Each test is one bypass that worked before the front door signed admissions and decisions:
a forged signal or update from a raw Temporal client, one person meeting a two-approver
quorum with concurrent calls, a workflow started by hand, a copied ticket, a path in a
selector, an extra selector key, a CLI without a credential or in another directory.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from changegate.authority import Signer
from changegate.models import (
    ChangeInput,
    ChangeStatus,
    Control,
    Decision,
    DecisionRequest,
    Outcome,
    Stage,
)
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.store import Store, create_token, get_change, list_refusals
from changegate.workflows import ChangeWorkflow
from tests.support import Fleet, as_user, make_request, wait_for_stage
from tests.test_cli_e2e import cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def people(store: Store) -> dict[str, str]:
    """Tokens: two sre approvers and the agent that proposes."""
    with store.session() as session:
        return {
            "alice": create_token(session=session, name="alice", role="approver", roles=["sre"]),
            "bob": create_token(session=session, name="bob", role="approver", roles=["sre"]),
            "agent": create_token(
                session=session, name="auth-agent", role="agent", agent_id="auth-agent"
            ),
        }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def parked_high_risk(changes: ChangeService) -> str:
    """A change whose tier needs two distinct sre approvers, waiting for them."""
    request = make_request(service="search", assumptions={}, agent_id="auth-agent")
    request.risk_hint = "high"
    change_id = await changes.submit(request)
    status = await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    assert status.approvals_required == 2, status.risk
    return change_id


def events(status: ChangeStatus, kind: str) -> list[str]:
    return [e.message for e in status.timeline if e.kind == kind]


async def test_a_raw_signal_naming_an_approver_never_counts(
    changes: ChangeService, client: Client, fleet: Fleet, store: Store
) -> None:
    change_id = await parked_high_risk(changes)
    handle = client.get_workflow_handle(change_id)
    # What anyone who reaches Temporal (CLI, web UI) can send: a name in a payload.
    await handle.signal("approve", Decision(actor="alice", reason="lgtm"))
    await handle.signal("approve", Decision(actor="bob", reason="lgtm"))
    # ...and a proof signed with a key that is not the front door's.
    forged = Signer(b"not-the-front-door-key-0123456789").proof(
        change_id=change_id, principal="alice", verdict="approve", reason="", now=datetime.now(UTC)
    )
    judgement = await handle.execute_update(
        "decide",
        DecisionRequest(actor="alice", verdict="approve", proof=forged),
        result_type=dict,
    )
    assert judgement["counted"] is False and judgement["rule"] == "approval.forged"
    status = await changes.status(change_id)
    assert status.stage == Stage.AWAITING_APPROVAL and status.approvals == []
    refused = events(status, "decision-refused")
    assert sum("approval.unauthenticated" in m for m in refused) == 2, refused
    assert all("claiming to be" in m for m in refused[:2])
    assert fleet.write_log() == []
    await changes.abort(change_id, _ops())
    final = await changes.wait(change_id)
    assert final.outcome == Outcome.ABORTED
    with store.session() as session:
        row = get_change(session=session, change_id=change_id)
        assert row is not None and row.outcome == "ABORTED"


async def test_a_replayed_proof_counts_once(
    changes: ChangeService, client: Client, fleet: Fleet
) -> None:
    change_id = await parked_high_risk(changes)
    genuine = changes.signer.proof(
        change_id=change_id,
        principal="alice",
        verdict="approve",
        reason="ok",
        now=datetime.now(UTC),
    )
    handle = client.get_workflow_handle(change_id)
    request = DecisionRequest(actor="alice", verdict="approve", reason="ok", proof=genuine)
    first = await handle.execute_update("decide", request, result_type=dict)
    again = await handle.execute_update("decide", request, result_type=dict)
    assert first["counted"] is True
    # Policy's duplicate rule or the workflow's nonce check: either way it does not count.
    assert again["counted"] is False
    assert again["rule"] in {"approval.duplicate", "approval.replayed"}
    status = await changes.status(change_id)
    assert [a.actor for a in status.approvals] == ["alice"]
    await changes.abort(change_id, _ops())
    await changes.wait(change_id)


async def test_ten_concurrent_approvals_by_one_person_count_once(
    changes: ChangeService, api_url: str, people: dict[str, str], fleet: Fleet
) -> None:
    change_id = await parked_high_risk(changes)
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as http:
        answers = await asyncio.gather(
            *(
                http.post(
                    f"/api/v1/changes/{change_id}/approve",
                    json={"reason": f"click {n}"},
                    headers=bearer(people["alice"]),
                )
                for n in range(10)
            )
        )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [409] * 9, [a.text for a in answers]
    rules = {a.json()["error"]["rule"] for a in answers if a.status_code == 409}
    assert rules == {"approval.duplicate"}
    status = await changes.status(change_id)
    assert [a.actor for a in status.approvals] == ["alice"]
    assert status.stage == Stage.AWAITING_APPROVAL and fleet.write_log() == []
    await changes.abort(change_id, _ops())
    await changes.wait(change_id)


async def test_a_workflow_started_by_hand_is_blocked_with_nothing_written(
    client: Client, settings: Settings, worker: Worker, fleet: Fleet, changes: ChangeService
) -> None:
    change_id = f"hand-{uuid.uuid4().hex[:8]}"
    request = make_request(service="search", assumptions={})
    handle = await client.start_workflow(
        ChangeWorkflow.run,
        ChangeInput(change_id=change_id, request=request),
        id=change_id,
        task_queue=settings.task_queue,
    )
    final = await handle.result()
    assert final.outcome == Outcome.BLOCKED
    assert "admission.unsigned" in (final.halt_reason or "")
    assert fleet.write_log() == []


async def test_a_ticket_copied_onto_another_request_is_blocked(
    client: Client, settings: Settings, worker: Worker, fleet: Fleet, changes: ChangeService
) -> None:
    change_id = f"copied-{uuid.uuid4().hex[:8]}"
    admitted = make_request(service="search", assumptions={})
    ticket = changes.signer.ticket(
        change_id=change_id,
        request=admitted,
        policy="whatever",
        now=datetime.now(UTC),
        ttl=timedelta(minutes=5),
    )
    swapped = make_request(service="checkout", parameters={"pool_size": 99})
    handle = await client.start_workflow(
        ChangeWorkflow.run,
        ChangeInput(change_id=change_id, request=swapped, ticket=ticket),
        id=change_id,
        task_queue=settings.task_queue,
    )
    final = await handle.result()
    assert final.outcome == Outcome.BLOCKED
    assert "admission.mismatch" in (final.halt_reason or "")
    assert fleet.write_log() == []


@pytest.mark.parametrize(
    ("selector", "field"),
    [
        ({"service": "search/../checkout"}, "target.selector.service"),
        ({"service": "checkout", "note": "x"}, "unknown key(s) 'note'"),
        ({"service": "Checkout"}, "target.selector.service"),
        ({"service": "checkout", "instances": "../payments-0"}, "target.selector.instances"),
    ],
)
async def test_selectors_that_name_other_units_are_refused_at_the_door(
    api_url: str,
    people: dict[str, str],
    fleet: Fleet,
    store: Store,
    selector: dict[str, str],
    field: str,
) -> None:
    body: dict[str, Any] = make_request(agent_id="auth-agent").model_dump(mode="json")
    body["target"]["selector"] = selector
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        answer = await http.post("/api/v1/changes", json=body, headers=bearer(people["agent"]))
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["rule"] == "target.selector" and field in error["reason"], error
    assert error["would_pass"]
    with store.session() as session:
        recorded = list_refusals(session=session, agent_id="auth-agent")
    assert any(r.rule == "target.selector" and r.reason == error["reason"] for r in recorded)
    assert fleet.write_log() == []


async def test_the_cli_without_a_credential_is_refused(
    cli_env: dict[str, str], changes: ChangeService, fleet: Fleet, tmp_path: Path
) -> None:
    change_id = await changes.submit(make_request(service="search", assumptions={}))
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    env = {k: v for k, v in cli_env.items() if k != "CHANGEGATE_TOKEN"}
    env["CHANGEGATE_CONFIG_DIR"] = str(tmp_path / "nobody")
    result = await cli(env, "approve", change_id)
    assert result.returncode == 5, result.stderr
    assert "auth.no_token" in result.stderr and "changegate login" in result.stderr
    forged = {**env, "CHANGEGATE_TOKEN": "cg_" + "0" * 40}
    result = await cli(forged, "approve", change_id)
    assert result.returncode == 5 and "never issued" in result.stderr, result.stderr
    status = await changes.status(change_id)
    assert status.approvals == [] and status.stage == Stage.AWAITING_APPROVAL
    await changes.abort(change_id, _ops())
    await changes.wait(change_id)


async def test_the_cli_from_another_directory_obeys_the_kill_switch(
    cli_env: dict[str, str], changes: ChangeService, fleet: Fleet, tmp_path: Path
) -> None:
    engaged = await cli(
        as_user(cli_env, "ops-admin"),
        "killswitch",
        "engage",
        "--agent",
        "agent-7",
        "--reason",
        "agent misbehaving",
    )
    assert engaged.returncode == 0, engaged.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    request = elsewhere / "change.json"
    request.write_text(make_request(service="search", assumptions={}).model_dump_json())
    env = {k: v for k, v in cli_env.items() if k != "CHANGEGATE_DATA_DIR"}
    try:
        result = await asyncio.to_thread(_run_in, elsewhere, env, "submit", str(request))
        assert result.returncode == 5, result.stdout + result.stderr
        assert "kill_switch" in result.stderr
        assert not (elsewhere / ".changegate").exists()
    finally:
        released = await cli(
            as_user(cli_env, "ops-admin"),
            "killswitch",
            "release",
            "--agent",
            "agent-7",
            "--reason",
            "done",
        )
        assert released.returncode == 0, released.stderr
    assert fleet.write_log() == []


def _run_in(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "changegate", *args],
        cwd=cwd,
        env={**env, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), env.get("PYTHONPATH", "")])},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _ops() -> Control:
    return Control(actor="test", reason="done with it")


async def test_a_raw_pause_holds_but_a_raw_resume_does_not_release(
    changes: ChangeService, client: Client, fleet: Fleet
) -> None:
    change_id = await changes.submit(
        make_request(service="search", assumptions={}, rollout={"canary_bake_seconds": 30})
    )
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    await changes.approve(change_id, Decision(actor="alice", reason="ok"))
    await wait_for_stage(changes, change_id, Stage.CANARY)
    handle = client.get_workflow_handle(change_id)
    await handle.signal("pause", Control(actor="mallory", reason="raw"))
    held = await changes.status(change_id)
    assert held.paused
    # A raw resume, even one naming a kill switch, never lets the change go on.
    await handle.signal("resume", Control(actor="alice", reason="go", kill_switch="global"))
    await wait_until_event(changes, change_id, "resume-refused")
    status = await changes.status(change_id)
    assert status.paused
    assert any((e.actor or "") == "mallory (unverified)" for e in status.timeline)
    assert events(status, "control-unverified")
    await changes.resume(change_id, Control(actor="bob", reason="signed resume"))
    await changes.abort(change_id, _ops())
    final = await changes.wait(change_id)
    assert final.outcome == Outcome.ROLLED_BACK
    resumed = [e for e in final.timeline if e.kind == "resumed"]
    assert [e.actor for e in resumed] == ["bob"]


async def wait_until_event(changes: ChangeService, change_id: str, kind: str) -> None:
    from tests.support import wait_until

    async def seen() -> bool:
        return bool(events(await changes.status(change_id), kind))

    await wait_until(seen, within=30, what=kind)
