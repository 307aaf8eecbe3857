"""The ASGI app: the JSON API under `/api/v1`, the approval page under `/ui`, and a server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator

import uvicorn
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from changegate.api import changes as change_routes
from changegate.api import health, operations, web
from changegate.api import metrics as metric_routes
from changegate.api.errors import install_error_handlers
from changegate.api.limits import MAX_BODY_BYTES, BodyLimit
from changegate.api.pages import templates
from changegate.api.state import Services
from changegate.errors import ConfigurationError
from changegate.redaction import install_log_redaction
from changegate.service import ChangeService
from changegate.settings import Settings

__all__ = ["api_server", "create_app", "running_api"]

_DESCRIPTION = """\
Agents submit change requests and follow them; approvers decide on them; operators read
incidents and pull kill switches. Every call under `/api/v1` needs
`Authorization: Bearer <token>` (tokens come from `changegate token create`); `/healthz`
(the process answers), `/readyz` (the audit store and Temporal answer; 503 if not) and
`/metrics` (Prometheus) need none. Every error answers
`{"error": {"rule": ..., "reason": ..., "would_pass": ...}}`; invalid bodies add `fields`,
each with its dotted `path`.
"""


def create_app(*, settings: Settings, changes: ChangeService) -> FastAPI:
    """The API and approval page over `changes`; the caller owns and closes the client."""
    install_log_redaction()
    app = FastAPI(
        title="changegate",
        version="1",
        description=_DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.services = Services(settings=settings, changes=changes)
    app.state.templates = templates
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.include_router(health.router)
    if settings.api_metrics:
        app.add_middleware(metric_routes.RequestMetrics)
        app.include_router(metric_routes.router)
    app.include_router(change_routes.router)
    app.include_router(operations.router)
    app.include_router(web.router)

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    return app


def api_server(
    *, settings: Settings, changes: ChangeService, host: str = "127.0.0.1", port: int = 8720
) -> uvicorn.Server:
    """A configured uvicorn server for the app; the caller awaits `serve()`."""
    config = uvicorn.Config(
        create_app(settings=settings, changes=changes),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        # The client address throttles failed logins; a forwarded header must not fake it.
        proxy_headers=False,
        lifespan="off",
        server_header=False,
    )
    return uvicorn.Server(config)


class _EmbeddedServer(uvicorn.Server):
    """A server inside a program that owns the signals: it stops when told, not on Ctrl-C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@contextlib.asynccontextmanager
async def running_api(
    *, settings: Settings, changes: ChangeService, host: str = "127.0.0.1", port: int = 8720
) -> AsyncIterator[str]:
    """Serve the app on this event loop until the block ends; yields its base URL.

    The socket is bound here, so a port in use fails with `ConfigurationError` instead of
    uvicorn exiting the process; port 0 picks a free one.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"cannot serve the API on {host}:{port} ({exc.strerror}); pick another --port"
        ) from exc
    bound = sock.getsockname()[1]
    server = _EmbeddedServer(api_server(settings=settings, changes=changes, host=host).config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise ConfigurationError(f"the API stopped while starting on {host}:{bound}")
            await asyncio.sleep(0.01)
        yield f"http://{host if ':' not in host else f'[{host}]'}:{bound}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
