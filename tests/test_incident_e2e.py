"""A rolled-back change leaves an incident whose review is already half written."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client as TemporalClient

from changegate.models import Decision, Outcome, Stage
from changegate.service import ChangeService
from changegate.service.visibility import change_query
from changegate.settings import Settings
from changegate.store import Role, Store, create_token
from tests.support import Fleet, as_user, make_request, wait_for_stage, wait_until
from tests.test_api_e2e import bearer
from tests.test_cli_e2e import cli, cli_json
from tests.test_mcp_e2e import connected, serving
from tests.test_mcp_e2e import text as mcp_text

pytestmark = pytest.mark.e2e

SECRET = "ghp_" + "Zq8Lm2Nx4Pv6Rt8Wy0Ab2Cd4Ef6Gh8Ij0Kl2"
# One secret for each other place a person or an agent writes free text.
MODEL_SECRET = "Mq7" + "Xw2Lp9Vb4Nz6"
SESSION_SECRET = "sk_live_" + "9Hq2Wx7Lp4Vb6Nz8Ty3Ku5Rs1"
COMMENT_SECRET = "Ap9" + "vR2xQ7wL"


def database_dump(store: Store) -> str:
    """Every row of the audit store as SQL text, read through SQLite itself.

    Opening the database file directly from this process would drop SQLite's POSIX locks
    held by the session's other connections to it.
    """
    raw = store.engine.raw_connection()
    try:
        return "\n".join(raw.driver_connection.iterdump())  # type: ignore[union-attr]
    finally:
        raw.close()


def decoded_payloads(node: object) -> str:
    """Every payload in an exported history, base64-decoded, concatenated."""
    found: list[str] = []
    if isinstance(node, dict):
        data = node.get("data")
        if isinstance(data, str):
            with contextlib.suppress(ValueError):
                found.append(base64.b64decode(data).decode("utf-8", "replace"))
        found.extend(decoded_payloads(v) for v in node.values())
    elif isinstance(node, list):
        found.extend(decoded_payloads(v) for v in node)
    return "\n".join(found)


async def test_rollback_opens_an_incident_with_a_prefilled_review(
    changes: ChangeService, fleet: Fleet, cli_env: dict[str, str]
) -> None:
    agent = f"release-bot-{uuid.uuid4().hex[:4]}"
    fleet.set("payments", "payments-1", f"hotfix-{uuid.uuid4().hex}", pool_size=30)
    request = make_request(
        service="payments",
        agent_id=agent,
        parameters={"version": "1.5.0-rc1"},
        assumptions={"unit_count": 3, "units.*.pool_size": 20},
    )
    change_id = await changes.submit(request)
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    waiting = await changes.status(change_id)
    # A deploy with stale context is high risk: two approvers holding the sre role.
    assert waiting.risk is not None and waiting.risk.tier == "high"
    await changes.approve(change_id, Decision(actor="alice", reason="looks fine"))
    await changes.approve(change_id, Decision(actor="bob", reason="ok"))
    final = await changes.wait(change_id)
    assert final.outcome == Outcome.ROLLED_BACK
    assert final.incident_id == f"inc-{change_id}"

    listed = await cli_json(as_user(cli_env, "ops-admin"), "incident", "list", "--open")
    assert final.incident_id in [i["incident_id"] for i in listed]
    shown = await cli(
        as_user(cli_env, "ops-admin"), "incident", "show", final.incident_id, "--markdown"
    )
    assert shown.returncode == 0, shown.stderr
    review = shown.stdout
    assert f"`{agent}`" in review  # the agent
    assert "assumed `units.*.pool_size = 20` — **stale: actually 30**" in review
    assert "context-boundary" in review and "SEV3" in review
    assert "units touched: payments-0 of 3 planned" in review
    assert "all restored: **yes**" in review
    assert "`findings: {stale-assumption: block}`" in review  # a policy line that prevents it
    assert "approved by alice, bob" in review and "canary: failed" in review

    # Engineers find it in Temporal's visibility by the search attributes changegate keeps.
    async def searchable() -> list[str]:
        refs = await changes.list(
            change_query(agent=agent, outcome=Outcome.ROLLED_BACK, risk="high")
        )
        return [r.change_id for r in refs]

    assert await wait_until(searchable, what="visible by search attributes") == [change_id]


async def seen_by_readers(
    api_url: str, settings: Settings, client: TemporalClient, store: Store, change_id: str
) -> dict[str, str]:
    """What the JSON API, the approval page and MCP show of the change, as text."""
    alice = as_user_token(store, "alice")
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        api = await http.get(f"/api/v1/changes/{change_id}", headers=bearer(alice))
        assert api.status_code == 200, api.text
        form = await http.get("/ui/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None, form.text
        login = await http.post("/ui/login", data={"token": alice, "csrf": csrf.group(1)})
        assert login.status_code == 303, login.text
        page = await http.get(f"/ui/changes/{change_id}")
        assert page.status_code == 200 and change_id in page.text
    agent = as_user_token(store, "agent-7", role="agent", agent_id="agent-7")
    async with serving(settings, client) as url, connected(url, agent) as mcp:
        read = await mcp.call_tool("get_change", {"change_id": change_id})
        assert not read.is_error, mcp_text(read)
    return {"api": api.text, "page": page.text, "mcp": mcp_text(read)}


def as_user_token(
    store: Store, name: str, *, role: Role = "approver", agent_id: str | None = None
) -> str:
    """A fresh token for `name`, so this test reads as a person or agent would."""
    with store.session() as session:
        return create_token(
            session=session, name=f"{name}-{uuid.uuid4().hex[:6]}", role=role, agent_id=agent_id
        )


async def test_a_planted_secret_appears_nowhere(
    changes: ChangeService,
    fleet: Fleet,
    cli_env: dict[str, str],
    api_url: str,
    settings: Settings,
    client: TemporalClient,
    store: Store,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    raw = make_request(service="search", assumptions={}).model_dump(mode="json")
    raw["intent"] = f"Rotate the pool; the deploy token is {SECRET} if you need it."
    raw["evidence"] = [{"source": f"runbook (token={SECRET})", "excerpt": f"export GH={SECRET}"}]
    raw["agent"]["model"] = f"ops-model API_TOKEN={MODEL_SECRET}"
    raw["agent"]["session_id"] = f"run {SESSION_SECRET}"
    submitted = await cli_json(cli_env, "submit", "-", stdin=json.dumps(raw))
    change_id = submitted["change_id"]
    status = await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    comment = f"LGTM; fyi the admin password is {COMMENT_SECRET}"
    await changes.approve(change_id, Decision(actor="alice", reason=comment))
    final = await changes.wait(change_id)
    assert final.outcome == Outcome.DONE

    history = tmp_path / "history.json"
    exported = await cli(cli_env, "history", "export", change_id, "-o", str(history))
    assert exported.returncode == 0, exported.stderr
    shown = await cli(cli_env, "show", change_id)
    places = {
        "history": history.read_text() + decoded_payloads(json.loads(history.read_text())),
        "summary": status.summary or "",
        "status": final.model_dump_json(),
        "show": shown.stdout + shown.stderr,
        "logs": caplog.text,
        "database": database_dump(store),
        **await seen_by_readers(api_url, settings, client, store, change_id),
    }
    for name, text in places.items():
        for secret in (SECRET, MODEL_SECRET, SESSION_SECRET, COMMENT_SECRET):
            assert secret not in text, f"the secret {secret[:6]}… leaked into the {name}"
    assert final.approvals[0].reason == "LGTM; fyi the admin password is [REDACTED]"
    # Each reader did show the text the secret was planted in, redacted.
    for name in ("history", "summary", "api", "page", "mcp"):
        assert "[REDACTED]" in places[name], name
