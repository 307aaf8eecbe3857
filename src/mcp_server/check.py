"""The `check_change` tool: a dry run of a proposal, so an agent can fix it before a person
reads it."""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import ToolAnnotations

from changegate.errors import ChangegateError
from changegate.kinds.text import describe_kinds
from changegate.mcp_server.auth import Authenticator, describe
from changegate.mcp_server.backend import Backend
from changegate.models import ChangeRequest
from changegate.service.dry_run import DryRunReport, dry_run

__all__ = ["CHECK", "check_tool"]

CHECK = """\
Check a change request without proposing it: nothing starts, nothing is reserved, and it does
not count against your rate limits. Takes the same request as propose_change and returns what
proposing it now would meet: `admission` (admitted, or the rule that refuses it, why and what
would pass), `findings` (VALIDATE's checks of your assumptions and the context against the
target's live state, read just now), `risk` (the tier and its reasons, which decide how many
approvers it needs) and `would_start`. Fix what it reports, then call propose_change.
"""


def check_tool(backend: Backend, *, token: str | None) -> Tool:
    """The `check_change` tool over `backend`; `token` is the stdio caller's, as for the
    other tools (HTTP callers send their own)."""
    auth = Authenticator(backend=backend, stdio_token=token)

    async def check_change(request: ChangeRequest) -> DryRunReport:
        """Dry-run a change request as the authenticated agent."""
        caller = await auth.caller()
        if not caller.acts_for(request.agent.agent_id):
            raise ToolError(
                f"refused: request.agent.agent_id is {request.agent.agent_id!r} but this token "
                f"acts as {describe(caller)!r}; an agent checks only its own proposals, so set "
                f"agent.agent_id to {caller.agent_id!r}"
            )
        try:
            changes = await backend.changes()
            return await dry_run(
                changes,
                request,
                asked_by=caller.label,
                settings=backend.settings,
                kinds=backend.kinds,
                providers=backend.providers,
            )
        except ChangegateError as exc:
            raise ToolError(str(exc)) from exc

    return Tool.from_function(
        check_change,
        description=f"{CHECK}\n{describe_kinds(backend.kinds.info())}",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
