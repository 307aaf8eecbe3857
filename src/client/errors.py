"""What the front door answered, as exceptions: one per kind of answer a caller acts on.

ApiError                      any error answer (`rule`, `reason`, `would_pass`)
├── Unauthenticated           401: no token, or an unknown or revoked one
├── Refused                   403, 409, 429: a rule said no (`retry_after` on 429)
├── NotFound                  404: no such change or incident
├── InvalidInput              422: the body or a parameter is not valid
└── Unavailable               503, or the API did not answer at all
"""

from __future__ import annotations

from changegate.errors import ChangegateError


class ApiError(ChangegateError):
    """An error answer of the changegate API."""

    def __init__(
        self,
        status: int,
        *,
        rule: str,
        reason: str,
        would_pass: str = "",
        retry_after: float | None = None,
    ) -> None:
        """Carry the answer's status and its rule, reason and what would pass."""
        self.status = status
        self.rule = rule
        self.reason = reason
        self.would_pass = would_pass
        self.retry_after = retry_after
        text = f"{rule}: {reason}" + (f"; would pass: {would_pass}" if would_pass else "")
        super().__init__(text)


class Unauthenticated(ApiError):
    """The API does not know the caller: log in (`changegate login`) or set CHANGEGATE_TOKEN."""


class Refused(ApiError):
    """A rule refused the call."""


class NotFound(ApiError):
    """The change or incident does not exist."""


class InvalidInput(ApiError):
    """The request was not valid."""


class Unavailable(ApiError):
    """The API, or Temporal or the audit store behind it, is unreachable right now."""


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
    kind: type[ApiError] = {
        401: Unauthenticated,
        403: Refused,
        404: NotFound,
        409: Refused,
        422: InvalidInput,
        429: Refused,
        503: Unavailable,
    }.get(status, ApiError)
    return kind(
        status,
        rule=str(detail.get("rule", f"http.{status}")),
        reason=reason,
        would_pass=str(detail.get("would_pass", "")),
        retry_after=retry_after,
    )
