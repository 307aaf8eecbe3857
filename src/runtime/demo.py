"""The demo story: an agent acting on stale context is stopped at VALIDATE, observes the
target and resubmits with the true state, and its corrected change runs; then a bad release
that the canary catches and rolls back. Runs against the real fleet on a real Temporal."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from changegate.client import ChangeClient, Credentials
from changegate.models import ChangeRequest, ChangeStatus, Outcome, Stage, TargetObservation
from changegate.runtime.devserver import embed_temporal, free_port
from changegate.settings import Settings
from changegate.store import Store, create_token

# Short bakes so the whole story takes about a minute.
DEMO_ROLLOUT = {
    "canary_units": 1,
    "waves": 2,
    "canary_bake_seconds": 3,
    "wave_bake_seconds": 1,
    "analysis_interval_seconds": 1,
    "analysis_count": 3,
    "failure_limit": 0,
    "inconclusive_limit": 1,
    "approval_timeout_seconds": 600,
}


def demo_settings(settings: Settings, *, embedded: bool | None) -> tuple[Settings, bool]:
    """The demo's settings and whether it starts its own Temporal dev server.

    A given Temporal address is used as it is; otherwise the dev server, its web UI and the
    fleet listen on free loopback ports (the UI and fleet on those given, if any), so the
    demo runs whatever else listens on the default ports.
    """
    embedded = embed_temporal(settings, embedded)
    given = settings.model_fields_set
    update: dict[str, str] = {}
    if embedded and "temporal_address" not in given:
        update["temporal_address"] = f"127.0.0.1:{free_port()}"
    if embedded and "ui_url" not in given:
        update["ui_url"] = f"http://127.0.0.1:{free_port()}"
    if "fleet_url" not in given:
        update["fleet_url"] = f"http://127.0.0.1:{free_port()}"
    return settings.model_copy(update=update), embedded


def capacity_request() -> ChangeRequest:
    """An agent raises checkout's pool size, believing every instance is at 20."""
    return ChangeRequest.model_validate(
        {
            "agent": {
                "agent_id": "capacity-agent",
                "model": "demo-llm-2",
                "session_id": "sess-1042",
                "on_behalf_of": "dana",
            },
            "intent": "Checkout p99 latency rises at peak; raise the connection pool from 20 to "
            "24 on every instance so requests stop queueing.",
            "target": {"kind": "fleet", "selector": {"service": "checkout"}},
            "change": {"operation": "set_config", "parameters": {"pool_size": 24}},
            "assumptions": {"unit_count": 4, "units.*.pool_size": 20},
            "evidence": [
                {
                    "source": "grafana: checkout latency (cached 2h ago)",
                    "excerpt": "p99 640ms at 18:00; pool_size 20 on all instances",
                }
            ],
            "risk_hint": "low",
            "rollout": DEMO_ROLLOUT,
        }
    )


def release_request() -> ChangeRequest:
    """An agent rolls out a release candidate to payments: the build does not exist."""
    return ChangeRequest.model_validate(
        {
            "agent": {"agent_id": "release-agent", "model": "demo-llm-2", "session_id": "sess-77"},
            "intent": "Roll payments forward to 1.5.0-rc1 to pick up the retry fix from the "
            "release notes.",
            "target": {"kind": "fleet", "selector": {"service": "payments"}},
            "change": {"operation": "set_config", "parameters": {"version": "1.5.0-rc1"}},
            "assumptions": {"unit_count": 3, "units.*.version": "1.4.2"},
            "evidence": [{"source": "release notes 1.5.0-rc1", "digest": "sha256:9f2c41"}],
            "risk_hint": "medium",
            "rollout": DEMO_ROLLOUT,
        }
    )


BELIEVED_POOL = 20


def corrected_capacity_request(
    stale: ChangeRequest, observation: TargetObservation
) -> tuple[ChangeRequest, str]:
    """What a careful agent resubmits after reading the target, and why.

    An instance that is not at the pool size the agent believed was raised by a person; this
    change would lower it and undo their fix. So the agent leaves those instances out (by
    `instances`) and states exactly what it now knows about the rest.
    """
    pools = {u.unit_id: u.state.get("pool_size") for u in observation.units}
    keep = [unit for unit, pool in pools.items() if pool == BELIEVED_POOL]
    left = {unit: pool for unit, pool in pools.items() if pool != BELIEVED_POOL}
    data = stale.model_dump(mode="json")
    data["target"]["selector"]["instances"] = ",".join(keep)
    data["assumptions"] = {"unit_count": len(keep), "units.*.pool_size": BELIEVED_POOL}
    kept = "; ".join(
        f"{unit} is already at {pool} (set by hand), left as is" for unit, pool in left.items()
    )
    data["intent"] = (
        f"Checkout p99 latency rises at peak; raise the connection pool from {BELIEVED_POOL} "
        f"to 24 on {', '.join(keep)}. {kept}."
    )
    data["evidence"].append(
        {
            "source": f"changegate observation of {observation.target_label} at "
            f"{observation.observed_at.isoformat(timespec='seconds')}",
            "excerpt": ", ".join(f"{unit} pool_size {pool}" for unit, pool in pools.items()),
        }
    )
    why = "\n".join(
        [
            "the agent reads the target (its blocked change's `observation`, through the API):",
            *(f"  {unit}: pool_size {pool}" for unit, pool in pools.items()),
            *(
                f"{unit} is at {pool}, not {BELIEVED_POOL}: a person raised it by hand. Setting "
                f"24 there would lower it and undo their fix, so the agent leaves {unit} out "
                "(`instances`) instead of overriding it."
                for unit, pool in left.items()
            ),
            f"it resubmits for {', '.join(keep)} only, assuming unit_count {len(keep)} and "
            f"pool_size {BELIEVED_POOL} on each: what it just observed.",
        ]
    )
    return ChangeRequest.model_validate(data), why


@dataclass
class Retry:
    """What the agent does after its change is stopped: observe, then resubmit."""

    title: str
    revise: Callable[[ChangeRequest, TargetObservation], tuple[ChangeRequest, str]]
    expected: Outcome


@dataclass
class Act:
    """One change of the story, the outcome the story needs, and the agent's retry."""

    title: str
    request: ChangeRequest
    expected: Outcome
    retry: Retry | None = None


@dataclass
class Played:
    """One submission of the story and how it ended."""

    title: str
    expected: Outcome
    status: ChangeStatus


ACTS = [
    Act(
        "an agent acts on stale context and is stopped",
        capacity_request(),
        Outcome.BLOCKED,
        Retry(
            "the agent observes and resubmits with the true state",
            corrected_capacity_request,
            Outcome.DONE,
        ),
    ),
    Act("a bad release meets the canary", release_request(), Outcome.ROLLED_BACK),
]


async def plant_drift(fleet_url: str) -> None:
    """Someone raised checkout-2's pool by hand an hour ago; the agent's dashboard missed it."""
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.put(
            f"{fleet_url}/services/checkout/instances/checkout-2/config",
            json={"config": {"pool_size": 28}},
            headers={"Idempotency-Key": "demo-manual-hotfix"},
        )
        response.raise_for_status()


APPROVER = "demo-approver"


def demo_tokens(store: Store) -> dict[str, str]:
    """A token for each acting agent and one for the approver, issued in the demo's store."""
    with store.session() as session:
        tokens = {
            act.request.agent.agent_id: create_token(
                session=session,
                name=act.request.agent.agent_id,
                role="agent",
                agent_id=act.request.agent.agent_id,
            )
            for act in ACTS
        }
        tokens[APPROVER] = create_token(session=session, name=APPROVER, role="approver")
    return tokens


async def play(
    api_url: str,
    tokens: Mapping[str, str],
    *,
    fleet_url: str,
    say: Callable[[str], None],
    on_event: Callable[[str, ChangeStatus, int], None],
) -> list[Played]:
    """Play every act through the API: the agent submits with its own token, the approver
    reads the summary and approves with theirs, and the change is followed to its end. An
    act whose change is stopped as the story needs is played again as its agent retries."""
    await plant_drift(fleet_url)
    results: list[Played] = []
    async with ChangeClient(Credentials(api_url=api_url, token=tokens[APPROVER])) as approver:
        for number, act in enumerate(ACTS, start=1):
            say(f"ACT {number}: {act.title}")
            agent_token = tokens[act.request.agent.agent_id]
            async with ChangeClient(Credentials(api_url=api_url, token=agent_token)) as agent:
                final = await _follow(agent, approver, act.request, say=say, on_event=on_event)
                results.append(Played(act.title, act.expected, final))
                if act.retry is None or final.outcome != act.expected:
                    continue
                # The agent reads the target through the front door: its own change's status.
                seen = (await agent.status(final.change_id)).observation
                if seen is None:
                    continue
                request, why = act.retry.revise(act.request, seen)
                say(f"ACT {number}, again: {act.retry.title}\n{why}")
                final = await _follow(agent, approver, request, say=say, on_event=on_event)
                results.append(Played(act.retry.title, act.retry.expected, final))
    return results


async def _follow(
    agent: ChangeClient,
    approver: ChangeClient,
    request: ChangeRequest,
    *,
    say: Callable[[str], None],
    on_event: Callable[[str, ChangeStatus, int], None],
) -> ChangeStatus:
    """Submit as the agent, approve once the approver has read the summary, follow to the end."""
    change_id = await agent.submit(request)
    printed = 0
    approved = False
    final: ChangeStatus | None = None
    async for status in approver.watch(change_id, interval=0.25):
        on_event(change_id, status, printed)
        printed = len(status.timeline)
        if status.stage == Stage.AWAITING_APPROVAL and not approved:
            say("summary the approver reads:\n" + (status.summary or ""))
            await approver.approve(change_id, reason="read the summary")
            approved = True
        final = status
    assert final is not None
    if final.outcome == Outcome.BLOCKED:
        say(
            "stopped before any approver was asked; the summary on record:\n"
            + (final.summary or "")
        )
    return final


def story_holds(results: list[Played]) -> bool:
    """True when every act and retry ended with the outcome the story needs, and the stale
    agent was stopped for the reason the story tells: its change would lower a value it
    believed it was raising."""
    stale = results[0] if results else None
    return (
        len(results) == sum(1 + (act.retry is not None) for act in ACTS)
        and all(p.status.outcome == p.expected for p in results)
        and stale is not None
        and any(f.code == "direction-reversed" for f in stale.status.findings)
    )
