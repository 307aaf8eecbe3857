"""The API's one error boundary: every failure becomes a status and a named-rule body.

Statuses come from `changegate.errors.ERROR_TABLE`, the table the CLI's exit codes come
from too. The API answers with the tree's `ApiError`s (`Unauthenticated` 401, `Refused`
403/409/429, `NotFound` 404, ...), the same classes the client raises for those answers.

Errors from below are mapped here and nowhere else: `AdmissionRefused` (403/409/422/429 by
rule; a 429's `retry_after`, rounded up to whole seconds, in the body and `Retry-After`),
`ChangeNotFound` (404), a Temporal that does not answer (`TemporalUnreachable`, RPC
UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED: 503) or refuses an argument (422), no
worker polling a running change's task queue (`NoWorker`: 503 `worker.absent`), an
audit store that cannot be reached (SQLAlchemy's operational and interface errors: 503),
any other changegate error (its status in the table), request validation (422 with field
paths), Starlette's HTTP errors (401-413) and anything else (500). Every body has the shape
`{"error": {"rule": ..., "reason": ..., "would_pass": ...}}`, with `retry_after` on 429 and
`dependency` on 503, which also carry `Retry-After`; pages under `/ui` get the same content
as HTML, with the same headers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

from changegate.admission import AdmissionRefused
from changegate.api.pages import render
from changegate.errors import (
    ApiError,
    ChangegateError,
    ChangeNotFound,
    NoWorker,
    TemporalUnreachable,
    Unauthenticated,
    Unavailable,
    admission_status,
    http_status,
    kind_of,
    rule_of,
)

__all__ = [
    "admission_status",
    "answer_headers",
    "error_body",
    "install_error_handlers",
    "retry_seconds",
    "unauthenticated",
]

_HTTP_RULES = {
    400: ("request.malformed", "send a well-formed HTTP request"),
    401: ("auth.token", "send `Authorization: Bearer <token>` with a token from an admin"),
    403: ("auth.role", "use a token whose role allows this call"),
    404: ("not_found", "see /openapi.json for the API's paths"),
    405: ("method_not_allowed", "see /openapi.json for the methods each path accepts"),
    413: ("request.size", "send a smaller body"),
    415: ("request.media_type", "send JSON with `Content-Type: application/json`"),
}

UNAVAILABLE_RETRY_SECONDS = 5
"""The `Retry-After` of a 503: long enough for a restarted store or Temporal to come back."""

RATE_POLL_SECONDS = 30
"""The `Retry-After` of a 429 refusal whose rule did not say when it may pass: a poll."""

_UNAVAILABLE = kind_of(Unavailable).http_status
"""The status of a dependency that did not answer (Temporal's RPCs, the audit store)."""

# The RPC statuses meaning Temporal did not get to the request, so the same request may pass.
_TEMPORAL_DOWN = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED}
)

_log = logging.getLogger("changegate.api")


def unauthenticated(reason: str) -> Unauthenticated:
    """The 401 for a call without a valid token, saying what to send."""
    return Unauthenticated(rule="auth.token", reason=reason, would_pass=_HTTP_RULES[401][1])


def retry_seconds(retry_after: float) -> int:
    """A refusal's `retry_after` as `Retry-After` states it: whole seconds, at least one."""
    return max(1, math.ceil(retry_after))


def answer_headers(exc: ApiError) -> dict[str, str]:
    """The headers an error answer carries: what to authenticate with, when to come back."""
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return headers


def error_body(
    *, rule: str, reason: str, would_pass: str = "", **extra: Any
) -> dict[str, dict[str, Any]]:
    """The one error body shape."""
    return {"error": {"rule": rule, "reason": reason, "would_pass": would_pass, **extra}}


def _field_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    fields = []
    for err in errors:
        loc = [str(part) for part in err.get("loc", ())]
        if loc and loc[0] == "body":
            loc = loc[1:]
        path = ".".join(loc) or "(body)"
        got = "" if err.get("type") == "missing" else f" (got {_short(err.get('input'))})"
        fields.append({"path": path, "message": f"{err.get('msg', 'invalid')}{got}"})
    return fields


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _respond(
    request: Request,
    status: int,
    body: dict[str, dict[str, Any]],
    headers: Mapping[str, str] | None = None,
) -> Response:
    if request.url.path.startswith("/ui"):
        context = {"status": status, "error": body["error"]}
        page = render(request, "error.html", context, status=status)
        page.headers.update(headers or {})
        return page
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _unavailable(
    request: Request,
    *,
    status: int = _UNAVAILABLE,
    dependency: str,
    reason: str,
    would_pass: str,
    rule: str = "service.unavailable",
) -> Response:
    body = error_body(
        rule=rule,
        reason=reason,
        would_pass=would_pass,
        dependency=dependency,
        retry_after=UNAVAILABLE_RETRY_SECONDS,
    )
    return _respond(request, status, body, {"Retry-After": str(UNAVAILABLE_RETRY_SECONDS)})


def _internal_body(exc: BaseException) -> dict[str, dict[str, Any]]:
    return error_body(
        rule="internal",
        reason=f"the server failed on this request ({type(exc).__name__}); the server "
        "logs it with its traceback",
        would_pass="the same request may pass later; report it if it does not",
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map every error the API can meet to its status and body, in one place."""

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        extra = {} if exc.retry_after is None else {"retry_after": exc.retry_after}
        body = error_body(rule=exc.rule, reason=exc.reason, would_pass=exc.would_pass, **extra)
        return _respond(request, http_status(exc), body, answer_headers(exc))

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AdmissionRefused)
        status = http_status(exc)
        retry_after = exc.retry_after
        if retry_after is None and status == 429:
            retry_after = RATE_POLL_SECONDS
        if retry_after is None:
            body = error_body(rule=exc.rule, reason=exc.reason, would_pass=exc.would_pass)
            return _respond(request, status, body)
        wait = retry_seconds(retry_after)
        body = error_body(
            rule=exc.rule, reason=exc.reason, would_pass=exc.would_pass, retry_after=wait
        )
        return _respond(request, status, body, {"Retry-After": str(wait)})

    async def not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ChangeNotFound)
        body = error_body(
            rule="not_found", reason=str(exc), would_pass="GET /api/v1/changes lists changes"
        )
        return _respond(request, http_status(exc), body)

    async def unreachable(request: Request, exc: Exception) -> Response:
        reason = exc.message if isinstance(exc, RPCError) else str(exc)
        status = http_status(exc) if isinstance(exc, TemporalUnreachable) else _UNAVAILABLE
        if isinstance(exc, RPCError) and exc.status == RPCStatusCode.INVALID_ARGUMENT:
            body = error_body(rule="request.invalid", reason=f"Temporal refused it: {reason}")
            return _respond(request, 422, body)
        if isinstance(exc, RPCError) and exc.status not in _TEMPORAL_DOWN:
            # Any other status is a call Temporal understood and failed: a bug, not an outage.
            _log.error("Temporal failed a call: %s", exc, exc_info=exc)
            return _respond(request, 500, _internal_body(exc))
        return _unavailable(
            request,
            status=status,
            dependency="temporal",
            reason=f"Temporal did not answer: {reason}",
            would_pass="the same request once Temporal is reachable",
        )

    async def no_worker(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NoWorker)
        return _unavailable(
            request,
            status=http_status(exc),
            rule="worker.absent",
            dependency="worker",
            reason=exc.reason,
            would_pass=exc.would_pass,
        )

    async def store_down(request: Request, exc: Exception) -> Response:
        down = isinstance(exc, OperationalError | InterfaceError | PoolTimeout) or (
            isinstance(exc, DBAPIError) and exc.connection_invalidated
        )
        if not down:
            _log.error("the audit store failed a statement: %s", exc, exc_info=exc)
            return _respond(request, 500, _internal_body(exc))
        # The driver's message may carry SQL or parameters: the log gets it, the caller not.
        _log.warning("the audit store is unavailable: %s", exc)
        return _unavailable(
            request,
            dependency="audit_store",
            reason=f"the audit store did not answer ({type(exc).__name__}); the server logs "
            "the cause",
            would_pass="the same request once the audit store is reachable",
        )

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        fields = _field_errors(exc.errors())
        first = f"{fields[0]['path']}: {fields[0]['message']}" if fields else "invalid request"
        body = error_body(
            rule="schema",
            reason=f"{len(fields)} problem(s) in the request; first: {first}",
            would_pass="a request matching the schema published at /openapi.json",
            fields=fields,
        )
        return _respond(request, 422, body)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        rule, would_pass = _HTTP_RULES.get(exc.status_code, ("http", ""))
        body = error_body(rule=rule, reason=str(exc.detail), would_pass=would_pass)
        return _respond(request, exc.status_code, body, exc.headers)

    async def changegate_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ChangegateError)
        status = http_status(exc)
        if status >= 500 and status != _UNAVAILABLE:
            _log.error("%s: %s", type(exc).__name__, exc, exc_info=exc)
            return _respond(request, status, _internal_body(exc))
        body = error_body(
            rule=rule_of(exc),
            reason=str(getattr(exc, "reason", exc)),
            would_pass=str(getattr(exc, "would_pass", "")),
        )
        headers = {"Retry-After": str(UNAVAILABLE_RETRY_SECONDS)} if status >= 500 else {}
        return _respond(request, status, body, headers)

    async def crashed(request: Request, exc: Exception) -> Response:
        return _respond(request, 500, _internal_body(exc))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(AdmissionRefused, refused)
    app.add_exception_handler(ChangeNotFound, not_found)
    app.add_exception_handler(TemporalUnreachable, unreachable)
    app.add_exception_handler(NoWorker, no_worker)
    app.add_exception_handler(ChangegateError, changegate_error)
    app.add_exception_handler(RPCError, unreachable)
    app.add_exception_handler(DBAPIError, store_down)
    app.add_exception_handler(PoolTimeout, store_down)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, crashed)
