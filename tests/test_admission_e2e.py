"""Every admission rule through the public client: the path that passes and the refusal.

Each refusal must name its rule, say why, and say what would pass; it is recorded in the
audit store, and no workflow is started for it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from changegate.admission import AdmissionRefused
from changegate.api import running_api
from changegate.models import ChangeRequest, Control, Outcome, Stage
from changegate.service import ChangeService, Operations
from changegate.settings import Settings
from changegate.store import Store, create_token, fingerprint, list_refusals, upsert_change
from changegate.worker import running_worker
from tests.support import Fleet, approve_fully, make_request, wait_for_stage

pytestmark = pytest.mark.e2e

BASE = """
agents:
  "*": {targets: ["fleet:*"], operations: [set_config], max_units: 20}
  scoped-agent:
    targets: ["fleet:service=search"]
    operations: [set_config]
    changes_per_hour: 2
    max_in_flight: 1
  read-only-agent: {targets: ["fleet:*"], operations: []}
  hourly-agent: {targets: ["fleet:service=search"], operations: [set_config], changes_per_hour: 1}
freeze_windows:
  - name: ledger-freeze
    targets: ["fleet:service=ledger"]
    start: "2000-01-01T00:00:00Z"
    end: "2100-01-01T00:00:00Z"
    reason: quarter-end close
loop_detection: {max_repeats: 2, window_minutes: 60, flip_flop_window_minutes: 60}
"""
OPS = Control(actor="test", reason="done with it")


@pytest.fixture(scope="module")
async def module_worker(
    client: Client, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Settings]:
    """A worker holding this module's policy (admission and workers must hold the same one)."""
    policy = Path(tmp_path_factory.mktemp("policy")) / "policy.yaml"
    policy.write_text(BASE)
    own = settings.model_copy(
        update={"policy_file": policy, "task_queue": f"admission-{uuid.uuid4().hex[:8]}"}
    )
    async with running_worker(client, own):
        yield own


@pytest.fixture
def gated(
    client: Client, module_worker: Settings, worker: Worker, store: Store
) -> Iterator[ChangeService]:
    """A front door judging by this module's policy over the session's audit store."""
    service = ChangeService(client, module_worker)
    yield service
    service.close()


@pytest.fixture
def started(gated: ChangeService) -> Iterator[list[str]]:
    """Changes a test started; aborted at the end so they do not hold their targets."""
    ids: list[str] = []
    yield ids


def two_search_units(**kwargs: Any) -> ChangeRequest:
    """A change on two of search's instances: within the scoped agent's blast radius."""
    request = make_request(service="search", assumptions={}, **kwargs)
    request.target.selector["instances"] = "search-0,search-1"
    return request


async def refused(changes: ChangeService, request: ChangeRequest) -> AdmissionRefused:
    with pytest.raises(AdmissionRefused) as info:
        await changes.submit(request)
    return info.value


async def admitted(changes: ChangeService, request: ChangeRequest) -> str:
    change_id = await changes.submit(request)
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    await changes.abort(change_id, OPS)
    assert (await changes.wait(change_id)).outcome == Outcome.ABORTED
    return change_id


def seed(store: Store, request: ChangeRequest, *, outcome: Outcome, minutes_ago: float) -> str:
    """A change in the audit history, as if it had run earlier."""
    change_id = f"seed-{fingerprint(request)[:6]}-{minutes_ago}-{outcome.value}"
    with store.session() as session:
        upsert_change(
            session=session,
            change_id=change_id,
            request=request,
            stage=Stage.ENDED,
            outcome=outcome,
            at=datetime.now(UTC) - timedelta(minutes=minutes_ago),
        )
    return change_id


async def test_target_scope(gated: ChangeService, fleet: Fleet, store: Store) -> None:
    err = await refused(gated, make_request(agent_id="scoped-agent", service="checkout"))
    assert err.rule == "scope.target"
    assert "fleet:service=checkout" in err.reason and "fleet:service=search" in err.would_pass
    with store.session() as session:
        rules = [r.rule for r in list_refusals(session=session, agent_id="scoped-agent")]
    assert "scope.target" in rules
    await admitted(gated, two_search_units(agent_id="scoped-agent"))


async def test_operation_scope(gated: ChangeService, fleet: Fleet) -> None:
    err = await refused(gated, make_request(agent_id="read-only-agent"))
    assert err.rule == "scope.operation"
    assert "set_config" in err.reason and "read-only-agent" in err.reason


async def test_an_operation_the_kind_lacks_is_refused_before_scope(
    gated: ChangeService, fleet: Fleet
) -> None:
    request = make_request()
    request.change.operation = "delete_service"
    err = await refused(gated, request)
    assert err.rule == "change.operation"
    assert "delete_service" in err.reason and "set_config" in err.would_pass


async def test_freeze_window(gated: ChangeService, fleet: Fleet) -> None:
    err = await refused(gated, make_request(service="ledger"))
    assert err.rule == "freeze_window"
    assert "ledger-freeze" in err.reason and "quarter-end close" in err.reason
    await admitted(gated, make_request(service="payments", assumptions={}))


async def test_one_active_change_per_target_names_the_holder(
    gated: ChangeService, fleet: Fleet
) -> None:
    holder = await gated.submit(make_request(service="payments", assumptions={}))
    try:
        await wait_for_stage(gated, holder, Stage.AWAITING_APPROVAL)
        err = await refused(
            gated, make_request(service="payments", parameters={"log_level": "warn"})
        )
        assert err.rule == "one_active_change" and holder in err.reason
    finally:
        await gated.abort(holder, OPS)
        await gated.wait(holder)
    await admitted(gated, make_request(service="payments", parameters={"log_level": "warn"}))


async def test_loop_after_repeated_failures(
    gated: ChangeService, fleet: Fleet, store: Store
) -> None:
    request = make_request(service="search", parameters={"timeout_ms": 77}, assumptions={})
    seed(store, request, outcome=Outcome.ROLLED_BACK, minutes_ago=20)
    await admitted(gated, request)  # one failure so far: a retry is allowed (and is aborted)
    seed(store, request, outcome=Outcome.REJECTED, minutes_ago=10)
    err = await refused(gated, request)
    assert err.rule == "loop"
    assert "fingerprint" in err.reason and "after" in err.would_pass


async def test_flip_flop_between_agents(gated: ChangeService, fleet: Fleet, store: Store) -> None:
    def setting(value: int, agent: str) -> ChangeRequest:
        return make_request(
            service="search", parameters={"timeout_ms": value}, assumptions={}, agent_id=agent
        )

    seed(store, setting(500, "agent-a"), outcome=Outcome.DONE, minutes_ago=30)
    seed(store, setting(900, "agent-b"), outcome=Outcome.DONE, minutes_ago=10)
    err = await refused(gated, setting(500, "agent-a"))
    assert err.rule == "flip_flop"
    assert "A -> B -> A" in err.reason and "900" in err.would_pass
    await admitted(gated, setting(700, "agent-a"))


async def test_rate_limits(gated: ChangeService, fleet: Fleet, store: Store) -> None:
    running = await gated.submit(two_search_units(agent_id="scoped-agent"))
    try:
        await wait_for_stage(gated, running, Stage.AWAITING_APPROVAL)
        err = await refused(
            gated,
            make_request(
                agent_id="scoped-agent", service="search", parameters={"log_level": "warn"}
            ),
        )
        # One change on the target is already active: that rule comes before in-flight.
        assert err.rule == "one_active_change"
    finally:
        await gated.abort(running, OPS)
        await gated.wait(running)
    other = make_request(agent_id="scoped-agent", service="search", parameters={"pool_size": 22})
    seed(store, other, outcome=Outcome.DONE, minutes_ago=5)
    err = await refused(
        gated,
        make_request(agent_id="scoped-agent", service="search", parameters={"timeout_ms": 900}),
    )
    assert err.rule == "rate.per_hour" and "2" in err.reason


async def test_a_429_over_http_says_when_to_retry(
    gated: ChangeService, module_worker: Settings, fleet: Fleet, store: Store
) -> None:
    request = make_request(agent_id="hourly-agent", service="search", assumptions={})
    seed(store, request.model_copy(deep=True), outcome=Outcome.DONE, minutes_ago=5)
    with store.session() as session:
        token = create_token(
            session=session, name="hourly-agent", role="agent", agent_id="hourly-agent"
        )
    async with (
        running_api(settings=module_worker, changes=gated, port=0) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as http,
    ):
        response = await http.post(
            "/api/v1/changes",
            json=request.model_dump(mode="json"),
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["rule"] == "rate.per_hour"
    # The seeded change leaves the hour 55 minutes after it was seeded.
    assert response.headers["Retry-After"] == str(error["retry_after"])
    assert 50 * 60 < error["retry_after"] <= 55 * 60


async def test_incident_freeze_until_the_incident_is_closed(
    gated: ChangeService, fleet: Fleet, store: Store
) -> None:
    change_id = await gated.submit(
        make_request(service="payments", parameters={"version": "9.9.9-bad"}, assumptions={})
    )
    await wait_for_stage(gated, change_id, Stage.AWAITING_APPROVAL)
    await approve_fully(gated, change_id)
    final = await gated.wait(change_id)
    assert final.outcome == Outcome.ROLLED_BACK and final.incident_id
    err = await refused(gated, make_request(service="payments", assumptions={}))
    assert err.rule == "incident_freeze" and final.incident_id in err.reason + err.would_pass
    await Operations(gated).close_incident(final.incident_id)
    await admitted(gated, make_request(service="payments", assumptions={}))


async def test_kill_switch_refuses_new_changes_until_released(
    gated: ChangeService, fleet: Fleet
) -> None:
    ops = Operations(gated)
    await ops.engage("agent:agent-7", "pause", actor="oncall", reason="investigating")
    err = await refused(gated, make_request(parameters={"log_level": "debug"}))
    assert err.rule == "kill_switch" and "oncall" in err.reason and "investigating" in err.reason
    await admitted(
        gated, make_request(agent_id="agent-8", parameters={"log_level": "debug"})
    )  # another agent is not stopped
    await ops.release("agent:agent-7", actor="oncall", reason="resolved")
    await admitted(gated, make_request(parameters={"log_level": "debug"}))


async def test_secrets_in_parameters_are_refused(gated: ChangeService, fleet: Fleet) -> None:
    # A value the fleet's schema takes (any version string) that is a secret all the same.
    err = await refused(gated, make_request(parameters={"version": "sk-live-0123456789abcdefghij"}))
    assert err.rule == "secrets.parameters" and "reference" in err.would_pass
