"""Every circuit breaker on the real stack, through the HTTP API: the agent is paused by
itself, its in-flight change is held, its next submission is refused naming the breaker,
and only a person's release lets the held change go on to DONE."""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from changegate.api import running_api
from changegate.models import ChangeRequest, Outcome, Stage
from changegate.policy.breakers import Trip
from changegate.service import ChangeService
from changegate.service.operations import OperationEvent, Operations
from changegate.settings import Settings
from changegate.store import (
    Store,
    close_incident,
    create_token,
    fingerprint,
    list_incidents,
    open_store,
    upsert_change,
)
from changegate.worker import running_worker
from tests.support import Fleet, make_request, terminate_running, wait_for_stage, wait_until
from tests.test_cli_e2e import cli

pytestmark = pytest.mark.e2e

POLICY = """
agents:
  "*": {targets: ["fleet:*"], operations: [set_config], max_units: 20}
  brk-scope: {targets: ["fleet:service=search"], operations: [set_config]}
  brk-cli: {targets: ["fleet:service=search"], operations: [set_config]}
  brk-rate: {targets: ["fleet:*"], operations: [set_config], changes_per_hour: 1}
loop_detection: {max_repeats: 1, window_minutes: 60, flip_flop_window_minutes: 60}
breakers:
  brk-scope: {scope_refusals: {count: 2, window_minutes: 10}}
  brk-cli: {scope_refusals: {count: 2, window_minutes: 10}}
  brk-loop: {loop_refusals: {count: 2, window_minutes: 10}}
  brk-rate: {rate_refusals: {count: 2, window_minutes: 10}}
  brk-budget: {changes_per_day: {count: 1}}
  brk-units: {units_per_day: {count: 4}}
  brk-failed: {failed_changes: {count: 1, window_minutes: 60}}
  brk-rollbacks: {rollbacks_in_a_row: {count: 1}}
"""
AGENTS = ["brk-scope", "brk-loop", "brk-rate", "brk-budget", "brk-units", "brk-failed"]
_POOLS = itertools.count(random.randrange(30, 3000, 7))


def req(agent: str, service: str, parameters: dict[str, Any] | None = None) -> ChangeRequest:
    """A change of `agent`'s on `service`, with a pool size no other change of the session
    set (so no loop or flip-flop rule of an earlier test can refuse it)."""
    return make_request(
        agent_id=agent,
        service=service,
        parameters=parameters or {"pool_size": next(_POOLS)},
        assumptions={},
    )


def bad() -> dict[str, Any]:
    """A version that does not exist: every request fails, the canary rolls back."""
    return {"version": f"9.9.{next(_POOLS)}-missing"}


@dataclass
class Stack:
    """This module's API (its own policy) and worker, and a token per caller."""

    http: httpx.AsyncClient
    changes: ChangeService
    tokens: dict[str, str]
    base: str

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def submit(self, who: str, request: ChangeRequest) -> httpx.Response:
        return await self.http.post(
            "/api/v1/changes", json=request.model_dump(mode="json"), headers=self.auth(who)
        )

    async def submitted(self, who: str, request: ChangeRequest) -> str:
        response = await self.submit(who, request)
        assert response.status_code == 201, response.text
        change_id: str = response.json()["change_id"]
        return change_id

    async def approve(self, change_id: str) -> None:
        """Approve as alice, then bob while the change's tier needs more."""
        for who in ("alice", "bob"):
            status = await self.changes.status(change_id)
            if status.stage != Stage.AWAITING_APPROVAL or (
                status.approvals and len(status.approvals) >= status.approvals_required
            ):
                return
            response = await self.http.post(
                f"/api/v1/changes/{change_id}/approve", json={}, headers=self.auth(who)
            )
            assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def own_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """This module's own audit store. Its changes set pool sizes no other module sets, and
    in the session's store they would make a later module's change look like a flip-flop."""
    path = tmp_path_factory.mktemp("breakers-store") / "changegate.db"
    with open_store(f"sqlite:///{path}") as opened:
        yield opened


@pytest.fixture(autouse=True)
def no_open_incident(own_store: Store) -> None:
    """Each test starts with no incident freezing a target, as `fleet` does for the
    session's store (a failed change's incident would freeze payments for the next test)."""
    now = datetime.now(UTC)
    with own_store.session() as session:
        for incident in list_incidents(session=session, open_only=True):
            close_incident(session=session, incident_id=incident.incident_id, at=now)


@pytest.fixture(scope="module")
async def stack(
    client: Client,
    settings: Settings,
    worker: Worker,
    own_store: Store,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    """An API and a worker holding this module's policy, over this module's store."""
    policy = Path(tmp_path_factory.mktemp("breakers")) / "policy.yaml"
    policy.write_text(POLICY)
    own = settings.model_copy(
        update={
            "policy_file": policy,
            "task_queue": f"breakers-{uuid.uuid4().hex[:8]}",
            "database_url": str(own_store.engine.url),
        }
    )
    suffix = uuid.uuid4().hex[:6]
    with own_store.session() as session:
        tokens = {
            agent: create_token(
                session=session, name=f"{agent}-{suffix}", role="agent", agent_id=agent
            )
            for agent in [*AGENTS, "brk-rollbacks", "brk-cli"]
        }
        for person in ("alice", "bob"):
            tokens[person] = create_token(
                session=session, name=f"{person}-{suffix}", role="approver", roles=["sre"]
            )
    changes = ChangeService(client, own)
    try:
        async with (
            running_worker(client, own),
            running_api(settings=own, changes=changes, port=0) as base,
            httpx.AsyncClient(base_url=base, timeout=60) as http,
        ):
            try:
                yield Stack(http=http, changes=changes, tokens=tokens, base=base)
            finally:
                await terminate_running(client, own.task_queue, "breaker tests over")
    finally:
        changes.close()


async def in_flight(stack: Stack, agent: str) -> str:
    """A change of the agent's waiting for approval on search: the one a trip must hold."""
    change_id = await stack.submitted(agent, req(agent, "search"))
    await wait_for_stage(stack.changes, change_id, Stage.AWAITING_APPROVAL, within=60)
    return change_id


async def tripped_holds_and_release_resumes(
    stack: Stack, store: Store, *, agent: str, held: str, breaker: str
) -> None:
    """What every trip must do: hold `held`, refuse the agent, and wait for a person."""
    await wait_until(
        lambda: _paused(stack, held), within=30, what=f"{held} paused by breaker {breaker}"
    )
    # Approved while paused, the change holds at its next safe point and applies nothing.
    await stack.approve(held)
    await wait_until(lambda: _event(stack, held, "held"), within=30, what=f"{held} held")
    assert all(u.status == "pending" for u in (await stack.changes.status(held)).units)

    # The agent's next submission is refused naming the breaker, even a harmless one.
    response = await stack.submit(agent, req(agent, "inventory"))
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["rule"] == f"breaker.{breaker}"
    assert "a person releases the breaker" in error["would_pass"]

    # The trip is listed with its evidence, and its incident is a guardrail breach.
    listed = await stack.http.get(
        "/api/v1/breakers", params={"agent": agent, "open_only": True}, headers=stack.auth("bob")
    )
    assert listed.status_code == 200, listed.text
    [trip] = listed.json()
    assert trip["breaker"] == breaker and trip["response"] == "pause" and trip["evidence"]
    with store.session() as session:
        incident = next(i for i in list_incidents(session=session) if i.agent_id == agent)
    assert incident.category == "agent-guardrail-breach"
    assert incident.incident_id == trip["incident_id"]

    # Only a person releases it.
    path = f"/api/v1/breakers/{agent}/release"
    denied = await stack.http.post(path, json={"reason": "let me go"}, headers=stack.auth(agent))
    assert denied.status_code == 403, denied.text
    released = await stack.http.post(
        path, json={"reason": "looked at the evidence"}, headers=stack.auth("alice")
    )
    assert released.status_code == 200, released.text
    report = released.json()
    assert held in report["resumed"]
    [record] = report["released"]
    assert record["released_by"].startswith("alice-")
    assert record["release_reason"] == "looked at the evidence"

    final = await stack.changes.wait(held)
    assert final.outcome == Outcome.DONE, final.halt_reason
    again = await stack.submit(agent, req(agent, "inventory"))
    assert again.status_code != 409 or not again.json()["error"]["rule"].startswith("breaker.")


async def _paused(stack: Stack, change_id: str) -> bool:
    return (await stack.changes.status(change_id)).paused


async def _event(stack: Stack, change_id: str, kind: str) -> bool:
    return any(e.kind == kind for e in (await stack.changes.status(change_id)).timeline)


# ---- admission-time triggers ----------------------------------------------------------------


async def test_scope_refusals_pause_the_agent(stack: Stack, fleet: Fleet, own_store: Store) -> None:
    held = await in_flight(stack, "brk-scope")
    first = await stack.submit("brk-scope", req("brk-scope", "ledger"))
    assert first.status_code == 403 and first.json()["error"]["rule"] == "scope.target"
    second = await stack.submit("brk-scope", req("brk-scope", "payments"))
    assert second.status_code == 403, second.text
    assert "tripped breaker scope_refusals" in second.json()["error"]["reason"]
    await tripped_holds_and_release_resumes(
        stack, own_store, agent="brk-scope", held=held, breaker="scope_refusals"
    )


async def test_loop_refusals_pause_the_agent(stack: Stack, fleet: Fleet, own_store: Store) -> None:
    held = await in_flight(stack, "brk-loop")
    looping = req("brk-loop", "ledger")
    with own_store.session() as session:
        upsert_change(
            session=session,
            change_id=f"seed-{fingerprint(looping)[:8]}-{uuid.uuid4().hex[:4]}",
            request=looping,
            stage=Stage.ENDED,
            outcome=Outcome.ROLLED_BACK,
            at=(await stack.changes.status(held)).timeline[0].at,
        )
    for _ in range(2):
        response = await stack.submit("brk-loop", looping)
        assert response.status_code == 409 and response.json()["error"]["rule"] == "loop"
    await tripped_holds_and_release_resumes(
        stack, own_store, agent="brk-loop", held=held, breaker="loop_refusals"
    )


async def test_rate_refusals_pause_the_agent(stack: Stack, fleet: Fleet, own_store: Store) -> None:
    held = await in_flight(stack, "brk-rate")
    for service in ("ledger", "payments"):
        response = await stack.submit("brk-rate", req("brk-rate", service))
        assert response.status_code == 429, response.text
        error = response.json()["error"]
        assert error["rule"] == "rate.per_hour"
        assert response.headers["Retry-After"] == str(error["retry_after"])
    await tripped_holds_and_release_resumes(
        stack, own_store, agent="brk-rate", held=held, breaker="rate_refusals"
    )


async def test_the_daily_change_budget_pauses_the_agent(
    stack: Stack, fleet: Fleet, own_store: Store
) -> None:
    held = await in_flight(stack, "brk-budget")
    over = await stack.submit("brk-budget", req("brk-budget", "ledger"))
    assert over.status_code == 409, over.text
    assert over.json()["error"]["rule"] == "breaker.changes_per_day"
    await tripped_holds_and_release_resumes(
        stack, own_store, agent="brk-budget", held=held, breaker="changes_per_day"
    )


# ---- outcome triggers: judged by the worker when a change's outcome is recorded -------------


async def ended(
    stack: Stack,
    agent: str,
    parameters: dict[str, Any] | None,
    outcome: Outcome,
    *,
    service: str = "payments",
) -> None:
    """Another change of the agent's, on `service`, run to `outcome`."""
    change_id = await stack.submitted(agent, req(agent, service, parameters))
    await wait_for_stage(stack.changes, change_id, Stage.AWAITING_APPROVAL, within=60)
    await stack.approve(change_id)
    final = await stack.changes.wait(change_id)
    assert final.outcome == outcome, final.halt_reason


async def test_the_daily_unit_budget_pauses_the_agent(
    stack: Stack, fleet: Fleet, own_store: Store
) -> None:
    held = await in_flight(stack, "brk-units")
    # checkout's 4 units meet the budget; the held change's 3 on search, run after the
    # release, stay under it.
    await ended(stack, "brk-units", None, Outcome.DONE, service="checkout")
    await tripped_holds_and_release_resumes(
        stack, own_store, agent="brk-units", held=held, breaker="units_per_day"
    )


async def test_a_failed_change_pauses_the_agent(
    stack: Stack, fleet: Fleet, own_store: Store
) -> None:
    held = await in_flight(stack, "brk-failed")
    await ended(stack, "brk-failed", bad(), Outcome.ROLLED_BACK)
    await tripped_holds_and_release_resumes(
        stack, own_store, agent="brk-failed", held=held, breaker="failed_changes"
    )


async def test_rollbacks_in_a_row_pause_the_agent(
    stack: Stack, fleet: Fleet, own_store: Store
) -> None:
    held = await in_flight(stack, "brk-rollbacks")
    await ended(stack, "brk-rollbacks", bad(), Outcome.ROLLED_BACK)
    await tripped_holds_and_release_resumes(
        stack, own_store, agent="brk-rollbacks", held=held, breaker="rollbacks_in_a_row"
    )


# ---- the CLI, and the hook a notifier hangs on ----------------------------------------------


async def test_the_cli_lists_a_trip_and_only_a_person_releases_it(
    stack: Stack, fleet: Fleet, cli_env: dict[str, str]
) -> None:
    for service in ("ledger", "payments"):
        response = await stack.submit("brk-cli", req("brk-cli", service))
        assert response.status_code == 403, response.text
    env = {**cli_env, "CHANGEGATE_API_URL": stack.base}
    as_alice = {**env, "CHANGEGATE_TOKEN": stack.tokens["alice"]}
    as_agent = {**env, "CHANGEGATE_TOKEN": stack.tokens["brk-cli"]}

    listed = await cli(as_alice, "--json", "breaker", "list", "--open", "--agent", "brk-cli")
    assert listed.returncode == 0, listed.stderr
    [trip] = json.loads(listed.stdout)
    assert trip["breaker"] == "scope_refusals" and trip["released_at"] is None
    assert [e["rule"] for e in trip["evidence"]] == ["scope.target", "scope.target"]

    refused = await cli(as_agent, "breaker", "release", "brk-cli", "--reason", "mine")
    assert refused.returncode == 5, refused.stdout + refused.stderr
    assert "auth.role" in refused.stderr

    released = await cli(as_alice, "breaker", "release", "brk-cli", "--reason", "checked")
    assert released.returncode == 0, released.stderr
    assert f"released scope_refusals ({trip['trip_id']}) for brk-cli" in released.stdout
    after = await cli(as_alice, "--json", "breaker", "list", "--agent", "brk-cli")
    [record] = json.loads(after.stdout)
    assert record["release_reason"] == "checked" and record["released_by"].startswith("alice-")


async def test_on_event_hears_every_engage_release_and_trip(stack: Stack, fleet: Fleet) -> None:
    heard: list[OperationEvent] = []

    async def hook(event: OperationEvent) -> None:
        heard.append(event)

    ops = Operations(stack.changes, on_event=hook)
    await ops.engage("agent:brk-events", "pause", actor="oncall", reason="look first")
    await ops.release("agent:brk-events", actor="oncall", reason="all clear")
    trip = Trip(
        trip_id="brk-events-1",
        agent_id="brk-events",
        breaker="rate_refusals",
        response="throttle",
        reason="2 rate refusals within 10 minutes",
        evidence=[{"refusal_id": 1, "rule": "rate.per_hour"}],
        at=datetime.now(UTC),
    )
    await ops.tripped(trip)
    assert [(e.kind, e.scope, e.agent_id, e.actor) for e in heard] == [
        ("kill_switch_engaged", "agent:brk-events", "brk-events", "oncall"),
        ("kill_switch_released", "agent:brk-events", "brk-events", "oncall"),
        ("breaker_tripped", "agent:brk-events", "brk-events", "breaker"),
    ]
    assert heard[0].reason == "look first"
    assert heard[2].evidence == trip.evidence
