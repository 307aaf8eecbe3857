"""The front door's core: admission, signing, and the Temporal calls behind the HTTP API.

Only the API (and the MCP server, which authenticates the same tokens) build a
`ChangeService`: it holds the signing key. Every other caller uses `changegate.client`.
`reconcile` (run by every worker, and by operators through the API) releases the targets
of changes whose workflows closed without recording it.
"""

from changegate.service.changes import ChangeNotFound, ChangeRef, ChangeService
from changegate.service.connection import TemporalUnreachable, connect, ensure_search_attributes
from changegate.service.operations import KillSwitchReport, Operations
from changegate.service.reconcile import ReconcileReport, Repair, reconcile

__all__ = [
    "ChangeNotFound",
    "ChangeRef",
    "ChangeService",
    "KillSwitchReport",
    "Operations",
    "ReconcileReport",
    "Repair",
    "TemporalUnreachable",
    "connect",
    "ensure_search_attributes",
    "reconcile",
]
