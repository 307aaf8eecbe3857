"""changegate as MCP tools for LLM agents: propose, read, wait for, list, observe, withdraw."""

from changegate.mcp_server.auth import Authenticator, CallerToken, Principal, StoreTokenVerifier
from changegate.mcp_server.backend import Backend, ChangesFactory
from changegate.mcp_server.server import LogLevel, build_server
from changegate.mcp_server.serving import (
    MCP_PATH,
    InvalidToken,
    Transport,
    check_stdio_token,
    connecting_changes,
    http_server,
    serve,
)
from changegate.mcp_server.views import (
    ChangeList,
    ChangeView,
    Observation,
    Proposal,
    WaitResult,
    Withdrawal,
)

__all__ = [
    "MCP_PATH",
    "Authenticator",
    "Backend",
    "CallerToken",
    "ChangeList",
    "ChangeView",
    "ChangesFactory",
    "InvalidToken",
    "LogLevel",
    "Observation",
    "Principal",
    "Proposal",
    "StoreTokenVerifier",
    "Transport",
    "WaitResult",
    "Withdrawal",
    "build_server",
    "check_stdio_token",
    "connecting_changes",
    "http_server",
    "serve",
]
