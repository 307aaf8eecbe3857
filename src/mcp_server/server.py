"""The MCP server: changegate's tools for LLM agents, over stdio or streamable HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any, Literal

from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.types import ToolAnnotations
from pydantic import AnyHttpUrl

from changegate.kinds.text import describe_kinds
from changegate.mcp_server.auth import Authenticator, StoreTokenVerifier
from changegate.mcp_server.backend import Backend, ChangesFactory
from changegate.mcp_server.check import check_tool
from changegate.mcp_server.schema import registry_tool
from changegate.mcp_server.tools import ChangegateTools
from changegate.providers import ProviderRegistry
from changegate.settings import Settings

INSTRUCTIONS = """\
changegate runs every infrastructure change you propose as a gated, durable workflow:
RECON -> VALIDATE -> SUMMARY -> AWAITING_APPROVAL -> CANARY -> ROLLOUT -> VERIFY -> DONE.
You never change a target directly and you cannot approve your own change: a human does.
1. observe_target to read the live state you are about to change.
2. propose_change, stating in `assumptions` what you believe is true now, keyed by the
   observation paths observe_target returned (`unit_count`, `units.<unit>.<key>`, or
   `units.*.<key>` for every unit). Stale assumptions are shown to the approver first.
3. wait_for_change (or get_change) until the change ends; list_my_changes finds it again.
   withdraw_change takes back a change of yours that still waits for approval.
A refusal names the rule, why, and what would pass: fix the request rather than retrying it.
"""

PROPOSE = """\
Propose a change request as the authenticated agent; returns its change id and web UI link.
`agent.agent_id` must be your own agent id. `target` is {kind, selector}, e.g.
{"kind": "fleet", "selector": {"service": "checkout"}}; `change` is {operation, parameters},
e.g. {"operation": "set_config", "parameters": {"pool_size": 24}}. Write `assumptions` with the
paths observe_target returned: {"unit_count": 4, "units.*.pool_size": 20}. Add `evidence` for
what you read. Nothing is applied until a human approves. If admission refuses the request,
the error names the rule, the reason and what would pass.
"""

GET = """\
Read one of your changes: stage, outcome, the approver's summary, validation findings
(stale assumptions first), per-unit state and the latest timeline events.
"""

WAIT = """\
Wait up to timeout_seconds (at most 600) for one of your changes to end. Returns its final
status, or "still running at <stage>" when the time runs out: call it again to keep waiting.
"""

LIST = """\
List your changes, newest first, optionally only those at one stage (ENDED for finished ones).
"""

OBSERVE = """\
Read a target's live state, changing nothing, before you propose a change to it. Returns every
unit with its current configuration and health, and `paths`: the observation paths and their
values now. Use exactly these paths in a request's `assumptions` (`unit_count`,
`units.<unit>.<key>`, or `units.*.<key>` for a value every unit shares).
"""

WITHDRAW = """\
Withdraw one of your own changes while it still waits for approval: it ends ABORTED with the
reason "withdrawn by <your agent id>", recorded in its timeline and the audit store. Nothing had
been applied. Refused (naming the rule) for another agent's change or one already approved,
applied or ended: ask an operator to abort it instead.
"""

_READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_WITHDRAW = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def build_server(
    *,
    settings: Settings,
    changes_factory: ChangesFactory,
    token: str | None = None,
    public_url: str = "http://127.0.0.1:8765",
    providers: ProviderRegistry | None = None,
    log_level: LogLevel = "WARNING",
) -> MCPServer[Backend]:
    """changegate's MCP server; `token` is the stdio caller's, HTTP callers send their own.

    `public_url` is where HTTP clients reach the server; changegate issues the tokens it
    accepts, so it is also named as their issuer. The server's lifespan closes the store,
    providers and change client it opened. `log_level` is the SDK's and the root logger's:
    WARNING keeps a stdio server's stderr quiet.
    """
    backend = Backend(settings=settings, changes_factory=changes_factory, providers=providers)
    infos = backend.kinds.info()
    kinds = describe_kinds(infos)

    @asynccontextmanager
    async def lifespan(_: MCPServer[Backend]) -> AsyncIterator[Backend]:
        try:
            yield backend
        finally:
            await backend.aclose()

    tools = ChangegateTools(backend=backend, auth=Authenticator(backend=backend, stdio_token=token))

    def tool(fn: Callable[..., Any], description: str, annotations: ToolAnnotations) -> Tool:
        return registry_tool(fn, description=description, annotations=annotations, infos=infos)

    writes = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False)
    server: MCPServer[Backend] = MCPServer(
        "changegate",
        version=version("changegate"),
        instructions=INSTRUCTIONS,
        token_verifier=StoreTokenVerifier(backend),
        auth=AuthSettings(issuer_url=AnyHttpUrl(public_url), resource_server_url=None),
        lifespan=lifespan,
        log_level=log_level,
        tools=[
            tool(tools.propose_change, f"{PROPOSE}\n{kinds}", writes),
            tool(tools.get_change, GET, _READ),
            tool(tools.wait_for_change, WAIT, _READ),
            tool(tools.list_my_changes, LIST, _READ),
            tool(tools.observe_target, f"{OBSERVE}\n{kinds}", _READ),
            tool(tools.withdraw_change, WITHDRAW, _WITHDRAW),
            check_tool(backend, token=token),
        ],
    )
    return server
