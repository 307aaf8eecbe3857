"""The demo story: a stale-context change that is caught in the summary, then a bad release
that the canary catches and rolls back. Runs against the real fleet on a real Temporal."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from changegate.client import ChangeClient, Credentials
from changegate.models import ChangeRequest, ChangeStatus, Outcome, Stage
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


@dataclass
class Act:
    """One change of the story and the outcome the story needs."""

    title: str
    request: ChangeRequest
    expected: Outcome


ACTS = [
    Act("an agent acts on stale context", capacity_request(), Outcome.DONE),
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
) -> list[tuple[Act, ChangeStatus]]:
    """Play every act through the API: the agent submits with its own token, the approver
    reads the summary and approves with theirs, and the change is followed to its end."""
    await plant_drift(fleet_url)
    results = []
    async with ChangeClient(Credentials(api_url=api_url, token=tokens[APPROVER])) as approver:
        for number, act in enumerate(ACTS, start=1):
            say(f"ACT {number}: {act.title}")
            agent_token = tokens[act.request.agent.agent_id]
            async with ChangeClient(Credentials(api_url=api_url, token=agent_token)) as agent:
                change_id = await agent.submit(act.request)
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
            results.append((act, final))
    return results


def story_holds(results: list[tuple[Act, ChangeStatus]]) -> bool:
    """True when every act ended with the outcome the story needs."""
    return all(status.outcome == act.expected for act, status in results)
