"""changegate as MCP tools for LLM agents: propose, read, wait for, list, and observe."""

from changegate.mcp_server.auth import Authenticator, CallerToken, Principal, StoreTokenVerifier
from changegate.mcp_server.backend import Backend, ChangesFactory
from changegate.mcp_server.server import build_server
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
    "Observation",
    "Principal",
    "Proposal",
    "StoreTokenVerifier",
    "Transport",
    "WaitResult",
    "build_server",
    "check_stdio_token",
    "connecting_changes",
    "http_server",
    "serve",
]
