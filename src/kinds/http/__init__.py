"""The `http` target kind: a JSON config API whose units are URLs or the items of a list.

Endpoints come from settings (`CHANGEGATE_HTTP_ENDPOINTS`), never from a request; a selector
names one (`{"endpoint": "flags", "instances": "a,b"}`). Reads are GET plus a JSON pointer,
writes PUT or PATCH with an `Idempotency-Key` header; `set_values` sets JSON scalars. When
every endpoint lists the `keys` `set_values` may set, a key none of them lists is refused, by
name, before the workflow starts (and a key its own endpoint does not list, when planning).
"""

from __future__ import annotations

from changegate.kinds.http.health import HttpHealthSource
from changegate.kinds.http.kind import KIND, HttpKind
from changegate.kinds.http.provider import HttpProvider
from changegate.kinds.http.schema import HttpEndpoint, HttpKindSettings, HttpSelector, SetValues

__all__ = [
    "KIND",
    "HttpEndpoint",
    "HttpHealthSource",
    "HttpKind",
    "HttpKindSettings",
    "HttpProvider",
    "HttpSelector",
    "SetValues",
]
