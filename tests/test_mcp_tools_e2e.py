"""The MCP tools as an LLM meets them, through the SDK's own client: described schemas,
withdrawing a proposal, progress while waiting, and a quiet stdio server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters, stdio_client
from temporalio.client import Client as TemporalClient

from changegate.kinds import KindRegistry
from changegate.models import Control, Outcome, Stage
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.store import Store, list_events
from tests.support import Fleet, approve_fully, make_request, wait_for_stage, wait_until
from tests.test_mcp_e2e import connected, data, issue, serving, text

pytestmark = pytest.mark.e2e


def properties(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every property of a JSON schema with its dotted path, through $refs, lists and unions."""
    defs = schema.get("$defs", {})
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(node: dict[str, Any], path: str, seen: frozenset[str]) -> None:
        ref = node.get("$ref")
        if ref is not None:
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                walk(defs[name], path, seen | {name})
            return
        for key in ("anyOf", "allOf", "oneOf"):
            for sub in node.get(key, []):
                walk(sub, path, seen)
        for name, prop in node.get("properties", {}).items():
            found.append((f"{path}.{name}", prop))
            walk(prop, f"{path}.{name}", seen)
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]", seen)

    walk(schema, "", frozenset({"JsonValue"}))
    return found


def described(prop: dict[str, Any], defs: dict[str, Any]) -> bool:
    """A property's own description, or that of the model it refers to."""
    if prop.get("description"):
        return True
    refs = [prop.get("$ref")] + [s.get("$ref") for s in prop.get("anyOf", [])]
    return any(r and defs[r.rsplit("/", 1)[-1]].get("description") for r in refs)


async def test_every_field_is_described_with_the_registry_names(
    settings: Settings, client: TemporalClient, store: Store
) -> None:
    token = issue(store, name="agent-7-schema", role="agent", agent_id="agent-7")
    registry = KindRegistry()
    async with serving(settings, client) as url, connected(url, token) as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
    assert "withdraw_change" in tools
    for name, tool in tools.items():
        schema = tool.input_schema
        fields = properties(schema)
        assert fields or name == "list_my_changes", name
        bare = [path for path, prop in fields if not described(prop, schema.get("$defs", {}))]
        assert bare == [], f"{name}: fields without a description: {bare}"

    propose = tools["propose_change"].input_schema["$defs"]
    assert propose["Target"]["properties"]["kind"]["enum"] == registry.names()
    operations = set(propose["DesiredChange"]["properties"]["operation"]["enum"])
    metrics = set(propose["HealthCheck"]["properties"]["metric"]["enum"])
    selector = propose["Target"]["properties"]["selector"]["description"]
    parameters = propose["DesiredChange"]["properties"]["parameters"]["description"]
    for info in registry.info():
        assert set(info.operations) <= operations
        assert set(info.metrics) <= metrics
        assert f"{info.name}: {', '.join(info.selector_keys)}" in selector
        for operation, keys in info.parameters.items():
            if keys:
                assert f"{info.name}.{operation}: {', '.join(keys)}" in parameters
    observe = tools["observe_target"].input_schema["properties"]
    assert observe["kind"]["enum"] == registry.names()


async def test_an_agent_withdraws_its_own_pending_change_and_no_other(
    settings: Settings,
    client: TemporalClient,
    changes: ChangeService,
    fleet: Fleet,
    store: Store,
) -> None:
    mine = issue(store, name="agent-7-withdraw", role="agent", agent_id="agent-7")
    other = issue(store, name="agent-8-withdraw", role="agent", agent_id="agent-8")
    async with serving(settings, client) as url:
        async with connected(url, mine) as mcp:
            request = make_request(service="search", assumptions={"unit_count": 3})
            proposed = data(
                await mcp.call_tool("propose_change", {"request": request.model_dump(mode="json")})
            )
        change_id = proposed["change_id"]
        await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)

        async with connected(url, other) as mcp:
            refused = await mcp.call_tool("withdraw_change", {"change_id": change_id})
        assert refused.is_error
        assert "withdraw.not_own" in text(refused) and "'agent-8'" in text(refused)
        assert (await changes.status(change_id)).stage == Stage.AWAITING_APPROVAL

        async with connected(url, mine) as mcp:
            answer = data(
                await mcp.call_tool(
                    "withdraw_change", {"change_id": change_id, "reason": "found a better fix"}
                )
            )
            assert answer["change_id"] == change_id
            final = await changes.wait(change_id)
            assert final.outcome == Outcome.ABORTED
            assert fleet.write_log() == []
            [abort] = [e for e in final.timeline if e.kind == "abort"]
            assert abort.actor == "agent-7"
            assert abort.message == "withdrawn by agent-7: found a better fix"

            def stored() -> bool:
                with store.session() as session:
                    rows = list_events(session=session, change_id=change_id)
                return any(
                    r.kind == "abort" and r.actor == "agent-7" and "withdrawn by" in r.message
                    for r in rows
                )

            await wait_until(stored, what="the withdrawal in the audit store")

            again = await mcp.call_tool("withdraw_change", {"change_id": change_id})
            assert again.is_error and "withdraw.not_pending" in text(again)
            assert "ABORTED" in text(again)

            approved = await changes.submit(
                make_request(
                    service="payments", assumptions={}, rollout={"canary_bake_seconds": 60}
                )
            )
            await wait_for_stage(changes, approved, Stage.AWAITING_APPROVAL)
            await approve_fully(changes, approved)
            await wait_for_stage(changes, approved, Stage.CANARY)
            late = await mcp.call_tool("withdraw_change", {"change_id": approved})
            assert late.is_error and "withdraw.not_pending" in text(late)
            assert "CANARY" in text(late) and "abort" in text(late)
            assert (await changes.status(approved)).outcome is None
        await changes.abort(approved, Control(actor="test", reason="tidy up"))
        assert (await changes.wait(approved)).outcome == Outcome.ROLLED_BACK


async def test_wait_for_change_sends_progress_while_it_waits(
    settings: Settings,
    client: TemporalClient,
    changes: ChangeService,
    fleet: Fleet,
    store: Store,
) -> None:
    token = issue(store, name="agent-7-progress", role="agent", agent_id="agent-7")
    change_id = await changes.submit(make_request(service="payments", assumptions={}))
    try:
        await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
        notes: list[tuple[float, float | None, str | None]] = []

        async def progress(value: float, total: float | None, message: str | None) -> None:
            notes.append((value, total, message))

        async with serving(settings, client) as url, connected(url, token) as mcp:
            result = data(
                await mcp.call_tool(
                    "wait_for_change",
                    {"change_id": change_id, "timeout_seconds": 3},
                    progress_callback=progress,
                )
            )
        assert result["finished"] is False
        assert len(notes) >= 2, notes
        assert all(total == 3 for _, total, _ in notes)
        assert [value for value, _, _ in notes] == sorted(value for value, _, _ in notes)
        assert all(
            message and f"{change_id} at AWAITING_APPROVAL" in message and "approval(s)" in message
            for _, _, message in notes
        ), notes
    finally:
        if not (await changes.status(change_id)).ended:
            await changes.abort(change_id, Control(actor="test", reason="done"))
        await changes.wait(change_id)


@pytest.mark.parametrize("level", [None, "INFO"])
async def test_the_stdio_server_keeps_stderr_quiet_unless_asked(
    cli_env: dict[str, str], changes: ChangeService, store: Store, tmp_path: Path, level: str | None
) -> None:
    token = issue(store, name=f"agent-7-stdio-{level}", role="agent", agent_id="agent-7")
    env = {**cli_env, "CHANGEGATE_TOKEN": token}
    env.pop("CHANGEGATE_MCP_LOG_LEVEL", None)
    if level is not None:
        env["CHANGEGATE_MCP_LOG_LEVEL"] = level
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "changegate.mcp_server", "--transport", "stdio"],
        env=env,
    )
    log = tmp_path / "stderr.log"
    with log.open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as mcp:
            assert "withdraw_change" in {t.name for t in (await mcp.list_tools()).tools}
            found = await mcp.call_tool("get_change", {"change_id": "chg-not-there"})
            assert found.is_error
            listed = await mcp.call_tool("list_my_changes", {})
            assert not listed.is_error, text(listed)
    lines = [line for line in log.read_text().splitlines() if "INFO" in line]
    if level is None:
        assert lines == []
    else:
        assert lines and "get_change" in log.read_text(), log.read_text()
