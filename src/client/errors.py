"""What the front door answered, as exceptions: one per kind of answer a caller acts on.

The classes live in `changegate.errors` (the API raises the same ones to answer):

ApiError                      any error answer (`rule`, `reason`, `would_pass`)
├── Unauthenticated           401: no token, or an unknown or revoked one
├── Refused                   403, 409, 429: a rule said no (`retry_after` on 429)
├── NotFound                  404: no such change or incident
├── InvalidInput              422: the body or a parameter is not valid
└── Unavailable               503, or the API did not answer at all
"""

from __future__ import annotations

from changegate.errors import (
    ApiError,
    InvalidInput,
    NotFound,
    Refused,
    Unauthenticated,
    Unavailable,
    answer_class,
)

__all__ = [
    "ApiError",
    "InvalidInput",
    "NotFound",
    "Refused",
    "Unauthenticated",
    "Unavailable",
    "error_for",
]


def error_for(status: int, body: object, *, retry_after: float | None = None) -> ApiError:
    """The exception for an error answer with JSON `body`."""
    detail = body.get("error", {}) if isinstance(body, dict) else {}
    if not isinstance(detail, dict):
        detail = {}
    reason = str(detail.get("reason", body if not isinstance(body, dict) else ""))
    fields = detail.get("fields") or []
    if fields:
        reason += "".join(
            f"\n  {f.get('path', '?')}: {f.get('message', '')}"
            for f in fields
            if isinstance(f, dict)
        )
    return answer_class(status)(
        status,
        rule=str(detail.get("rule", f"http.{status}")),
        reason=reason,
        would_pass=str(detail.get("would_pass", "")),
        retry_after=retry_after,
    )
