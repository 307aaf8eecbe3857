"""The MCP server through the SDK's own client, over streamable HTTP and over stdio."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, MCPError, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent
from temporalio.client import Client as TemporalClient

from changegate.mcp_server import MCP_PATH, build_server, http_server
from changegate.models import Control, Decision, Outcome, Stage
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.store import Role, Store, create_token
from tests.support import Fleet, free_port, make_request, wait_for_stage, wait_until

pytestmark = pytest.mark.e2e

TOOLS = {
    "propose_change",
    "get_change",
    "wait_for_change",
    "list_my_changes",
    "observe_target",
    "withdraw_change",
    "check_change",
}


def issue(store: Store, *, name: str, role: Role, agent_id: str | None = None) -> str:
    with store.session() as session:
        return create_token(session=session, name=name, role=role, agent_id=agent_id)


def text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return result.structured_content


@asynccontextmanager
async def serving(settings: Settings, temporal: TemporalClient) -> AsyncIterator[str]:
    """The server on a free loopback port in this loop; yields its endpoint URL."""
    port = free_port()

    async def changes() -> ChangeService:
        return ChangeService(temporal, settings)

    server = build_server(
        settings=settings, changes_factory=changes, public_url=f"http://127.0.0.1:{port}"
    )
    http = http_server(server, host="127.0.0.1", port=port)
    task = asyncio.create_task(http.serve())
    try:
        await wait_until(lambda: http.started or task.done(), what="the MCP server to start")
        assert not task.done(), "the MCP server stopped while starting"
        yield f"http://127.0.0.1:{port}{MCP_PATH}"
    finally:
        http.should_exit = True
        await task


@asynccontextmanager
async def connected(
    url: str, token: str, *, statuses: list[int] | None = None
) -> AsyncIterator[Client]:
    """The SDK's client over streamable HTTP, sending `token`; records HTTP statuses if asked."""

    async def record(response: httpx2.Response) -> None:
        if statuses is not None:
            statuses.append(response.status_code)

    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx2.Timeout(30, read=120),
            event_hooks={"response": [record]},
        ) as http,
        Client(streamable_http_client(url, http_client=http)) as mcp,
    ):
        yield mcp


async def test_an_agent_proposes_and_follows_a_change_over_streamable_http(
    settings: Settings,
    client: TemporalClient,
    changes: ChangeService,
    fleet: Fleet,
    store: Store,
) -> None:
    token = issue(store, name="agent-7-token", role="agent", agent_id="agent-7")
    approver = issue(store, name="alice-token", role="approver")
    async with serving(settings, client) as url:
        async with connected(url, token) as mcp:
            assert {t.name for t in (await mcp.list_tools()).tools} == TOOLS

            observed = data(
                await mcp.call_tool(
                    "observe_target", {"kind": "fleet", "selector": {"service": "checkout"}}
                )
            )
            live = fleet.configs("checkout")
            assert observed["unit_count"] == len(live) == 4
            assert (
                observed["paths"]["units.checkout-0.pool_size"] == live["checkout-0"]["pool_size"]
            )

            impostor = await mcp.call_tool(
                "propose_change",
                {"request": make_request(agent_id="agent-9").model_dump(mode="json")},
            )
            assert impostor.is_error
            assert "'agent-9'" in text(impostor) and "'agent-7'" in text(impostor)

            request = make_request().model_dump(mode="json")
            proposal = data(await mcp.call_tool("propose_change", {"request": request}))
            change_id = proposal["change_id"]
            assert proposal["web_ui_url"] == settings.workflow_url(change_id)
            await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)

            refused = await mcp.call_tool("propose_change", {"request": request})
            assert refused.is_error
            assert "one_active_change" in text(refused) and "would pass:" in text(refused)

            pending = data(
                await mcp.call_tool(
                    "wait_for_change", {"change_id": change_id, "timeout_seconds": 0.5}
                )
            )
            assert pending["finished"] is False
            assert pending["message"] == "still running at AWAITING_APPROVAL"
            assert pending["change"]["summary"]

            judgement = await changes.approve(change_id, Decision(actor="alice"))
            assert judgement.counted, judgement.reason
            done = data(
                await mcp.call_tool(
                    "wait_for_change", {"change_id": change_id, "timeout_seconds": 60}
                )
            )
            assert done["finished"] is True
            assert done["change"]["outcome"] == Outcome.DONE.value
            assert {u["status"] for u in done["change"]["units"]} == {"verified"}

            async def listed() -> bool:
                found = data(await mcp.call_tool("list_my_changes", {"stage": "ENDED"}))
                assert found["agent_id"] == "agent-7"
                return change_id in [c["change_id"] for c in found["changes"]]

            await wait_until(listed, what=f"{change_id} in list_my_changes")

        statuses: list[int] = []
        with pytest.raises(ExceptionGroup) as refused_token:
            async with connected(url, "cg_not-a-token", statuses=statuses):
                pass
        assert refused_token.group_contains(MCPError)
        assert statuses and set(statuses) == {401}

        async with connected(url, approver) as mcp:
            wrong_role = await mcp.call_tool("list_my_changes", {})
            assert wrong_role.is_error and "role(s) approver" in text(wrong_role)


async def test_an_agent_reads_its_change_through_the_stdio_server(
    cli_env: dict[str, str],
    changes: ChangeService,
    fleet: Fleet,
    store: Store,
    tmp_path: Path,
) -> None:
    token = issue(store, name="agent-7-stdio", role="agent", agent_id="agent-7")
    mine = await changes.submit(make_request(service="search", assumptions={"unit_count": 3}))
    theirs = await changes.submit(
        make_request(service="payments", assumptions={"unit_count": 3}, agent_id="agent-8")
    )
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "changegate.mcp_server", "--transport", "stdio"],
        env={**cli_env, "CHANGEGATE_TOKEN": token},
    )
    try:
        await wait_for_stage(changes, mine, Stage.AWAITING_APPROVAL)
        with (tmp_path / "mcp-stdio.log").open("w") as errlog:
            async with Client(stdio_client(params, errlog=errlog)) as mcp:
                assert {t.name for t in (await mcp.list_tools()).tools} == TOOLS

                observed = data(
                    await mcp.call_tool(
                        "observe_target", {"kind": "fleet", "selector": {"service": "search"}}
                    )
                )
                assert observed["unit_count"] == 3
                assert set(fleet.configs("search")) == {u["unit_id"] for u in observed["units"]}

                change = data(await mcp.call_tool("get_change", {"change_id": mine}))
                assert change["stage"] == Stage.AWAITING_APPROVAL.value
                assert change["outcome"] is None and change["summary"]
                assert change["target"] == "fleet:service=search"
                assert change["timeline"] and change["findings"] == []

                other = await mcp.call_tool("get_change", {"change_id": theirs})
                assert other.is_error and "only their own changes" in text(other)
    finally:
        for change_id in (mine, theirs):
            await changes.abort(change_id, Control(actor="test", reason="done reading"))
        for change_id in (mine, theirs):
            assert (await changes.wait(change_id)).outcome == Outcome.ABORTED
