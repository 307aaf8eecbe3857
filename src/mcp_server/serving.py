"""Running the server: a connecting change client, stdio, and streamable HTTP on uvicorn."""

from __future__ import annotations

from typing import Any, Literal

import uvicorn
from mcp.server.mcpserver import MCPServer

from changegate.authority import Principal
from changegate.errors import InvalidToken
from changegate.mcp_server.auth import lookup, refusal
from changegate.mcp_server.backend import Backend, ChangesFactory
from changegate.mcp_server.server import LogLevel, build_server
from changegate.service import ChangeService, connect
from changegate.settings import Settings

__all__ = [
    "MCP_PATH",
    "InvalidToken",
    "Transport",
    "check_stdio_token",
    "connecting_changes",
    "http_server",
    "serve",
]

Transport = Literal["stdio", "http"]

MCP_PATH = "/mcp"
"""Where the streamable HTTP endpoint is mounted."""


def connecting_changes(settings: Settings) -> ChangesFactory:
    """A factory that connects to Temporal when a tool first needs it."""

    async def make() -> ChangeService:
        return ChangeService(await connect(settings), settings)

    return make


def http_server(server: MCPServer[Any], *, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for the streamable HTTP endpoint; `serve()` runs it until `should_exit`."""
    app = server.streamable_http_app(streamable_http_path=MCP_PATH, host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    return uvicorn.Server(config)


async def check_stdio_token(settings: Settings, token: str) -> Principal:
    """The token's principal, so a stdio server with a bad token stops before it serves."""
    backend = Backend(settings=settings, changes_factory=connecting_changes(settings))
    try:
        row = await lookup(backend, token)
    finally:
        await backend.aclose()
    if row is None:
        raise InvalidToken("CHANGEGATE_TOKEN is not a valid token (unknown or revoked)")
    principal = Principal.of(row)
    refused = refusal(principal)
    if refused is not None:
        raise InvalidToken(f"CHANGEGATE_TOKEN: {refused}")
    return principal


async def serve(
    *,
    settings: Settings,
    transport: Transport,
    host: str,
    port: int,
    token: str | None,
    log_level: LogLevel = "WARNING",
) -> None:
    """Serve until stdin closes (stdio) or the process is interrupted (http).

    Logs go to stderr from `log_level` up: WARNING by default, so a stdio client's log of
    the server's stderr holds only what needs a person's attention.
    """
    if transport == "stdio":
        if token is None:
            raise InvalidToken("set CHANGEGATE_TOKEN to the agent's token for --transport stdio")
        await check_stdio_token(settings, token)
        server = build_server(
            settings=settings,
            changes_factory=connecting_changes(settings),
            token=token,
            log_level=log_level,
        )
        await server.run_stdio_async()
        return
    server = build_server(
        settings=settings,
        changes_factory=connecting_changes(settings),
        public_url=f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}",
        log_level=log_level,
    )
    await http_server(server, host=host, port=port).serve()
