"""Who is calling: an agent token, checked against the audit store on every request.

Over streamable HTTP the token is the `Authorization: Bearer` header, verified by the SDK's
bearer middleware through `StoreTokenVerifier` on each HTTP request (an unknown or revoked
token is answered 401 before any tool runs). Over stdio there is no header: the token comes
from `CHANGEGATE_TOKEN` and is verified again on each tool call, so revoking it takes effect
at once. Either way `Authenticator.caller` is the one place that decides whether the token
may use the MCP server at all; for which agent it acts is `Principal.acts_for`, the rule
the HTTP API applies too. Tokens are never logged or echoed; messages name the token's name.
"""

from __future__ import annotations

import asyncio

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver.exceptions import ToolError

from changegate.authority import Principal
from changegate.mcp_server.backend import Backend
from changegate.store import TokenRow, verify_token

__all__ = [
    "Authenticator",
    "CallerToken",
    "Principal",
    "StoreTokenVerifier",
    "describe",
    "lookup",
    "refusal",
]


def refusal(principal: Principal) -> str | None:
    """Why this token may not use the MCP server, or None when it may.

    The server acts for agents: it takes a token holding the `agent` capability (an admin
    token holds every one), and an agent token must name the agent it acts for.
    """
    if not principal.can("agent"):
        roles = ", ".join(sorted({principal.role, *principal.roles}))
        return (
            f"token {principal.name!r} has role(s) {roles}; the MCP server acts for agents, "
            "so use a token with role 'agent' (or 'admin'). Approvers decide with "
            "`changegate approve` / `changegate reject`"
        )
    if principal.agent_id is None and not principal.can("admin"):
        return (
            f"token {principal.name!r} names no agent; an agent token must be issued for "
            "exactly one agent_id"
        )
    return None


def describe(principal: Principal) -> str:
    """How messages name the caller: its agent id, or the admin token's name."""
    return principal.agent_id or f"admin token {principal.name!r}"


class CallerToken(AccessToken):
    """The SDK's access token, carrying the principal the store vouched for."""

    principal: Principal


class StoreTokenVerifier:
    """The SDK `TokenVerifier` for streamable HTTP: a bearer token is good if the store has it."""

    def __init__(self, backend: Backend) -> None:
        """Look tokens up in `backend`'s audit store."""
        self._backend = backend

    async def verify_token(self, token: str) -> AccessToken | None:
        """The caller's access token, or None (answered 401) for an unknown or revoked token."""
        row = await lookup(self._backend, token)
        if row is None:
            return None
        principal = Principal.of(row)
        return CallerToken(
            token=token,
            client_id=principal.agent_id or principal.token_id,
            scopes=sorted({principal.role, *principal.roles}),
            subject=principal.token_id,
            principal=principal,
        )


async def lookup(backend: Backend, token: str) -> TokenRow | None:
    """The stored row of an issued, unrevoked token."""
    store = await backend.store()

    def read() -> TokenRow | None:
        with store.session() as session:
            return verify_token(session=session, token=token)

    return await asyncio.to_thread(read)


class Authenticator:
    """Resolves the caller of a tool from the HTTP request or the stdio token."""

    def __init__(self, *, backend: Backend, stdio_token: str | None) -> None:
        """Fall back to `stdio_token` when the request did not come over HTTP."""
        self._backend = backend
        self._stdio_token = stdio_token

    async def caller(self) -> Principal:
        """The verified principal, or a `ToolError` that says what credential to use."""
        access = get_access_token()
        if isinstance(access, CallerToken):
            principal = access.principal
        elif self._stdio_token is not None:
            row = await lookup(self._backend, self._stdio_token)
            if row is None:
                raise ToolError(
                    "CHANGEGATE_TOKEN is not a valid token (unknown or revoked); "
                    "ask an operator for an agent token and restart the MCP server with it"
                )
            principal = Principal.of(row)
        else:
            raise ToolError(
                "not authenticated: send `Authorization: Bearer <agent token>` over HTTP, "
                "or set CHANGEGATE_TOKEN for stdio"
            )
        refused = refusal(principal)
        if refused is not None:
            raise ToolError(refused)
        return principal
