"""`changegate mcp`: serve changegate's tools to LLM agents over stdio or streamable HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import cast

import click

from changegate.cli.context import EXIT_INVALID, Context, fail
from changegate.settings import Settings

__all__ = ["mcp"]


@click.command(
    epilog="Over stdio the agent's token comes from CHANGEGATE_TOKEN; over http each request "
    "sends `Authorization: Bearer <token>`. Only agent (or admin) tokens are accepted."
)
@click.option(
    "--transport",
    type=click.Choice(["stdio", "http"]),
    default="stdio",
    show_default=True,
    help="stdio for a client that launches this process; http for streamable HTTP at /mcp.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface for --transport http; loopback unless you mean to expose it.",
)
@click.option("--port", default=8765, show_default=True, help="Port for --transport http.")
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="WARNING",
    show_default=True,
    envvar="CHANGEGATE_MCP_LOG_LEVEL",
    help="What the server logs to stderr [CHANGEGATE_MCP_LOG_LEVEL]; INFO logs every request.",
)
@click.pass_context
def mcp(ctx: click.Context, transport: str, host: str, port: int, log_level: str) -> None:
    """Serve changegate's tools to LLM agents over MCP (stdio or streamable HTTP)."""
    from changegate.mcp_server import InvalidToken, LogLevel, serve

    found = ctx.find_object(Context)
    settings = found.settings if found is not None else Settings()
    token = os.environ.get("CHANGEGATE_TOKEN") or None
    if transport == "http":
        if host not in ("127.0.0.1", "localhost", "::1"):
            click.echo(f"warning: serving MCP on {host}, beyond loopback", err=True)
        click.echo(f"changegate MCP server at http://{host}:{port}/mcp; Ctrl-C stops", err=True)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                serve(
                    settings=settings,
                    transport="stdio" if transport == "stdio" else "http",
                    host=host,
                    port=port,
                    token=token if transport == "stdio" else None,
                    log_level=cast("LogLevel", log_level.upper()),
                )
            )
    except InvalidToken as exc:
        fail(str(exc), EXIT_INVALID)
