"""Dry runs through every front door: the HTTP API, the CLI and the MCP tool.

Each one answers with the admission verdict, the risk tier and VALIDATE's findings on the
target's live state, and leaves nothing behind but one audit line: no change row, no
workflow, nothing counted against the agent's limits.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client as TemporalClient

from changegate.api import running_api
from changegate.service import ChangeService
from changegate.service.dry_run import DRY_RUN_RULE
from changegate.settings import Settings
from changegate.store import Store, create_token, list_refusals, recent_changes
from tests.support import Fleet, make_request
from tests.test_mcp_e2e import connected, data, issue, serving

pytestmark = pytest.mark.e2e


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def stale_body(fleet: Fleet, agent_id: str, *, service: str = "checkout") -> dict[str, Any]:
    """A request whose agent believes a wrong version on every unit (a key it does not
    write), with the right unit count."""
    live = fleet.configs(service)
    body = make_request(service=service, assumptions={}, agent_id=agent_id).model_dump(mode="json")
    body["assumptions"] = {"unit_count": len(live), "units.*.version": "0.0.1-stale"}
    return body


def rows_of(store: Store, agent_id: str) -> list[str]:
    since = datetime.now(UTC) - timedelta(days=1)
    with store.session() as session:
        return [
            row.change_id
            for row in recent_changes(session=session, since=since)
            if row.agent_id == agent_id
        ]


def audit_lines(store: Store, agent_id: str) -> list[str]:
    with store.session() as session:
        return [
            row.reason
            for row in list_refusals(session=session, agent_id=agent_id)
            if row.rule == DRY_RUN_RULE
        ]


@pytest.fixture
def agent() -> str:
    """An agent of this test alone, so its audit lines are this test's."""
    return f"dry-agent-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def agent_token(store: Store, agent: str) -> str:
    with store.session() as session:
        return create_token(session=session, name=f"{agent}-token", role="agent", agent_id=agent)


async def test_a_dry_run_answers_with_the_verdict_risk_and_live_findings(
    api_url: str, fleet: Fleet, store: Store, agent: str, agent_token: str
) -> None:
    body = stale_body(fleet, agent)
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as http:
        answer = await http.post(
            "/api/v1/changes", params={"dry_run": "true"}, json=body, headers=bearer(agent_token)
        )
    assert answer.status_code == 200, answer.text
    assert "Location" not in answer.headers
    report = answer.json()
    assert report["dry_run"] is True
    assert report["admission"]["admitted"] is True
    # VALIDATE's finding compares the belief with the live fleet, read just now.
    live = fleet.configs("checkout")
    stale = [f for f in report["findings"] if f["code"] == "stale-assumption"]
    assert [(f["path"], f["expected"]) for f in stale] == [("units.*.version", "0.0.1-stale")]
    assert stale[0]["actual"] == {
        f"units.{unit}.version": config["version"] for unit, config in live.items()
    }
    assert len(report["observation"]["units"]) == len(live)
    # The tier with its reasons: 4 units is low, and the warning raises it one step.
    risk = report["risk"]
    assert risk["tier"] == "medium"
    assert risk["reasons"][0] == f"blast radius: {len(live)} unit(s) -> low"
    assert any("finding(s) to heed (stale-assumption)" in r for r in risk["reasons"])
    assert report["would_start"] is True
    assert report["verdict"] == ("admission would admit it; VALIDATE would pass; risk medium")
    # Nothing started, nothing reserved; one audit line names who asked.
    assert rows_of(store, agent) == []
    assert audit_lines(store, agent) == [
        f"dry run asked by {agent}-token (agent): {report['verdict']}"
    ]


async def test_a_refused_dry_run_names_the_rule_and_still_reports_the_target(
    api_url: str, fleet: Fleet, store: Store, agent: str, agent_token: str
) -> None:
    # ledger sits in the test policy's standing freeze window.
    body = stale_body(fleet, agent, service="ledger")
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as http:
        answer = await http.post(
            "/api/v1/changes", params={"dry_run": "true"}, json=body, headers=bearer(agent_token)
        )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    admission = report["admission"]
    assert admission["admitted"] is False
    assert admission["rule"] == "freeze_window"
    assert "ledger-freeze" in admission["reason"] and admission["would_pass"]
    assert report["would_start"] is False
    assert report["verdict"].startswith("admission would refuse it by rule freeze_window; ")
    assert any(f["code"] == "stale-assumption" for f in report["findings"])
    assert rows_of(store, agent) == []
    assert len(audit_lines(store, agent)) == 1


async def test_a_dry_run_for_another_agent_is_forbidden(
    api_url: str, fleet: Fleet, store: Store, agent: str, agent_token: str
) -> None:
    body = stale_body(fleet, "agent-7")
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as http:
        answer = await http.post(
            "/api/v1/changes", params={"dry_run": "true"}, json=body, headers=bearer(agent_token)
        )
    assert answer.status_code == 403
    assert answer.json()["error"]["rule"] == "auth.agent_id"
    assert not any(f"{agent}-token" in line for line in audit_lines(store, "agent-7"))


LIMITED = """\
agents:
  "*":
    targets: ["fleet:*"]
    operations: [set_config]
    changes_per_hour: 1
    max_in_flight: 1
"""


@pytest.fixture
async def limited_api(
    tmp_path: Path, settings: Settings, client: TemporalClient
) -> AsyncIterator[str]:
    """The API under a policy that lets the agent submit one change an hour, one at a time."""
    policy = tmp_path / "limited.yaml"
    policy.write_text(LIMITED)
    limited = settings.model_copy(update={"policy_file": policy})
    changes = ChangeService(client, limited)
    try:
        async with running_api(settings=limited, changes=changes, port=0) as base:
            yield base
    finally:
        changes.close()


async def test_dry_runs_count_against_no_limit(
    limited_api: str, fleet: Fleet, store: Store, agent: str, agent_token: str
) -> None:
    body = stale_body(fleet, agent, service="search")
    # A value no other change of the session sets: what search went through before this test
    # (a loop, a flip-flop) must not be what refuses it.
    body["change"]["parameters"] = {"pool_size": 3000 + int(agent.rsplit("-", 1)[-1], 16) % 5000}
    async with httpx.AsyncClient(base_url=limited_api, timeout=60) as http:
        verdicts = [
            (
                await http.post(
                    "/api/v1/changes",
                    params={"dry_run": "true"},
                    json=body,
                    headers=bearer(agent_token),
                )
            ).json()["admission"]
            for _ in range(3)
        ]
    # Had the first counted, the second would meet rate.per_hour (one an hour) or
    # rate.in_flight / one_active_change (one at a time).
    assert verdicts == [verdicts[0]] * 3
    assert verdicts[0]["admitted"] is True, verdicts[0]
    assert rows_of(store, agent) == []
    assert len(audit_lines(store, agent)) == 3


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "changegate", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


async def test_submit_dry_run_prints_the_report_and_exits_by_its_verdict(
    cli_env: dict[str, str], fleet: Fleet, store: Store, tmp_path: Path
) -> None:
    clean = tmp_path / "clean.json"
    clean.write_text(
        make_request(service="payments", assumptions={"unit_count": 3}).model_dump_json()
    )
    frozen = tmp_path / "frozen.json"
    frozen.write_text(make_request(service="ledger", assumptions={}).model_dump_json())
    before = rows_of(store, "agent-7")
    heard = len(audit_lines(store, "agent-7"))

    ok = await asyncio.to_thread(cli, cli_env, "submit", "--dry-run", str(clean))
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    assert lines[0].startswith("dry run: admission would admit it; VALIDATE would pass; risk ")
    assert lines[0].endswith("; nothing was started")
    assert "admission: admitted" in lines
    assert any(line.startswith("  blast radius: 3 unit(s)") for line in lines)

    refused = await asyncio.to_thread(cli, cli_env, "submit", str(frozen), "--dry-run", "--json")
    assert refused.returncode == 5, refused.stderr
    report = json.loads(refused.stdout)
    assert report["admission"]["rule"] == "freeze_window"
    assert report["dry_run"] is True

    waited = await asyncio.to_thread(cli, cli_env, "submit", "--dry-run", "--wait", str(clean))
    assert waited.returncode == 2
    assert "--dry-run starts nothing to wait for" in waited.stderr

    assert rows_of(store, "agent-7") == before
    assert len(audit_lines(store, "agent-7")) == heard + 2


async def test_the_mcp_check_change_tool_dry_runs_a_proposal(
    settings: Settings, client: TemporalClient, fleet: Fleet, store: Store, agent: str
) -> None:
    token = issue(store, name=f"{agent}-mcp", role="agent", agent_id=agent)
    async with serving(settings, client) as url, connected(url, token) as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        assert tools["check_change"].annotations is not None
        assert tools["check_change"].annotations.read_only_hint is True
        report = data(await mcp.call_tool("check_change", {"request": stale_body(fleet, agent)}))
        assert report["dry_run"] is True
        assert report["admission"]["admitted"] is True
        assert report["risk"]["tier"] == "medium"
        assert "stale-assumption" in [f["code"] for f in report["findings"]]

        impostor = await mcp.call_tool("check_change", {"request": stale_body(fleet, "agent-9")})
        assert impostor.is_error
    assert rows_of(store, agent) == []
    assert audit_lines(store, agent) == [
        f"dry run asked by {agent}-mcp (agent): {report['verdict']}"
    ]
