"""The Python client, async (`ChangeClient`) and blocking (`SyncChangeClient`)."""

from changegate.client.changes import ChangeClient, ChangeNotFound, ChangeRef
from changegate.client.connection import TemporalUnreachable, connect, ensure_search_attributes
from changegate.client.operations import KillSwitchReport, Operations
from changegate.client.sync import SyncChangeClient

__all__ = [
    "ChangeClient",
    "ChangeNotFound",
    "ChangeRef",
    "KillSwitchReport",
    "Operations",
    "SyncChangeClient",
    "TemporalUnreachable",
    "connect",
    "ensure_search_attributes",
]
