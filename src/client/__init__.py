"""The Python client: connect to Temporal and work with changes."""

from changegate.client.changes import ChangeClient, ChangeNotFound, ChangeRef
from changegate.client.connection import TemporalUnreachable, connect, ensure_search_attributes
from changegate.client.operations import KillSwitchReport, Operations

__all__ = [
    "ChangeClient",
    "ChangeNotFound",
    "ChangeRef",
    "KillSwitchReport",
    "Operations",
    "TemporalUnreachable",
    "connect",
    "ensure_search_attributes",
]
