"""The HTTP API for agents and approvers, and the approval web page.

`create_app` builds the ASGI app over a `ChangeService`; `api_server` wraps it in a
configured uvicorn server. Tokens come from the audit store (`changegate token create`).
"""

from changegate.api.app import api_server, create_app, running_api
from changegate.api.auth import Principal, ensure_first_approver
from changegate.api.errors import admission_status
from changegate.api.limits import MAX_BODY_BYTES

__all__ = [
    "MAX_BODY_BYTES",
    "Principal",
    "admission_status",
    "api_server",
    "create_app",
    "ensure_first_approver",
    "running_api",
]
