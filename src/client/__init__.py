"""The Python client of the changegate API, async (`ChangeClient`) and blocking.

Every call carries a token (`changegate login`, `CHANGEGATE_TOKEN`, or the one `changegate
up` stores); identity and guardrails live at the front door, never in the client.
"""

from changegate.client.credentials import (
    Credentials,
    credentials_path,
    forget_credentials,
    load_credentials,
    save_credentials,
)
from changegate.client.errors import (
    ApiError,
    InvalidInput,
    NotFound,
    Refused,
    Unauthenticated,
    Unavailable,
)
from changegate.client.http import ChangeClient
from changegate.client.sync import SyncChangeClient

__all__ = [
    "ApiError",
    "ChangeClient",
    "Credentials",
    "InvalidInput",
    "NotFound",
    "Refused",
    "SyncChangeClient",
    "Unauthenticated",
    "Unavailable",
    "credentials_path",
    "forget_credentials",
    "load_credentials",
    "save_credentials",
]
