"""`/metrics`: the front door's Prometheus metrics, and the middleware that times requests.

No token, like `/healthz`: a scraper calls it, and it holds counts by bounded labels only
(see `changegate.observability.metrics`), never a change's contents or a secret.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from changegate.observability import CONTENT_TYPE, exposition, request_served

__all__ = ["RequestMetrics", "router"]

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format."}},
)
async def metrics() -> Response:
    """Admission refusals by rule, breaker trips, request latency and the process's own."""
    return Response(exposition(), media_type=CONTENT_TYPE)


class RequestMetrics:
    """Times every HTTP request, labelled by the route template it matched (not its path)."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap `app`."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; observe its duration once it is answered or has failed."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            request_served(
                method=scope["method"],
                route=_route(scope),
                status=status,
                seconds=time.perf_counter() - start,
            )


def _route(scope: Scope) -> str:
    """The matched route's template; `unmatched` for a path no route serves."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(template) if template else "unmatched"
