"""The front door's core: admission, signing, and the Temporal calls behind the HTTP API.

Only the API (and the MCP server, which authenticates the same tokens) build a
`ChangeService`: it holds the signing key. Every other caller uses `changegate.client`.
"""

from changegate.service.changes import ChangeNotFound, ChangeRef, ChangeService
from changegate.service.connection import TemporalUnreachable, connect, ensure_search_attributes
from changegate.service.operations import KillSwitchReport, Operations

__all__ = [
    "ChangeNotFound",
    "ChangeRef",
    "ChangeService",
    "KillSwitchReport",
    "Operations",
    "TemporalUnreachable",
    "connect",
    "ensure_search_attributes",
]
