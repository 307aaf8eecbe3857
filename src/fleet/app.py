"""The fleet's HTTP API: a FastAPI app over one simulated Fleet, ticked in the background."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from changegate.fleet.config import ConfigError
from changegate.fleet.estate import Fleet, UnknownTarget
from changegate.fleet.metrics import CONTENT_TYPE, render_metrics
from changegate.fleet.spec import FleetSpec
from changegate.fleet.writes import WriteConflict

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replay"


def create_app(
    spec: FleetSpec, *, tick_seconds: float = 0.1, window_seconds: float = 2.0
) -> FastAPI:
    """Return the fleet app; its lifespan runs one simulation tick every `tick_seconds`."""
    if tick_seconds <= 0:
        raise ValueError(f"tick_seconds must be positive, got {tick_seconds}")
    if window_seconds < tick_seconds:
        raise ValueError(
            f"window_seconds ({window_seconds}) must be at least one tick ({tick_seconds})"
        )
    fleet = Fleet(spec, window_ticks=max(1, round(window_seconds / tick_seconds)))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        ticker = asyncio.create_task(_run_ticks(fleet, tick_seconds), name="fleet-ticker")
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    app = FastAPI(title="changegate demo fleet", lifespan=lifespan)
    app.state.fleet = fleet

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Unknown routes and wrong methods answer in the same {"error": ...} shape as the rest.
        return _error(exc.status_code, str(exc.detail))

    # Handlers are async and never await while touching the fleet, so they interleave with the
    # ticker only between whole operations and no lock is needed.
    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/services")
    async def list_services() -> JSONResponse:
        return JSONResponse({"services": fleet.service_views()})

    @app.get("/services/{service}")
    async def get_service(service: str) -> JSONResponse:
        try:
            return JSONResponse(fleet.service_view(service))
        except UnknownTarget as exc:
            return _error(404, str(exc))

    @app.get("/services/{service}/instances/{instance}")
    async def get_instance(service: str, instance: str) -> JSONResponse:
        try:
            return JSONResponse(fleet.instance(service, instance).view())
        except UnknownTarget as exc:
            return _error(404, str(exc))

    @app.put("/services/{service}/instances/{instance}/config")
    async def put_config(service: str, instance: str, request: Request) -> JSONResponse:
        try:
            fleet.instance(service, instance)
        except UnknownTarget as exc:
            return _error(404, str(exc))
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        if not key.strip():
            return _error(
                400,
                f"missing {IDEMPOTENCY_HEADER} header; send one unique key per intended change "
                "and the same key again to retry it",
            )
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(
                422, 'request body is not valid JSON; send {"config": {...partial config...}}'
            )
        try:
            result = fleet.write(
                service=service,
                instance_id=instance,
                idempotency_key=key,
                body=body,
                at=datetime.now(UTC),
            )
        except WriteConflict as exc:
            return _error(409, str(exc))
        except ConfigError as exc:
            return _error(422, str(exc))
        headers = {REPLAY_HEADER: "true"} if result.replayed else None
        return JSONResponse(result.response, headers=headers)

    @app.get("/writes")
    async def list_writes() -> JSONResponse:
        return JSONResponse(
            {
                "writes": [record.view() for record in fleet.log],
                "counts": fleet.write_counts(),
            }
        )

    @app.post("/reset")
    async def reset() -> JSONResponse:
        fleet.reset()
        return JSONResponse({"status": "reset"})

    @app.get("/metrics")
    async def metrics(request: Request) -> PlainTextResponse:
        # Prometheus scrapes without parameters; `?service=S&instance=A&instance=B` narrows
        # the answer for readers that need only a few units.
        text = render_metrics(
            fleet,
            service=request.query_params.get("service"),
            instances=request.query_params.getlist("instance"),
        )
        return PlainTextResponse(text, media_type=CONTENT_TYPE)

    return app


def fleet_of(app: FastAPI) -> Fleet:
    """Return the Fleet behind an app made by `create_app`, e.g. to tick it by hand in tests."""
    fleet = app.state.fleet
    if not isinstance(fleet, Fleet):
        raise TypeError("this app was not made by changegate.fleet.create_app")
    return fleet


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)


async def _run_ticks(fleet: Fleet, tick_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while True:
        # Aim at a fixed schedule so ticks do not drift, but never burst to catch up after a
        # stall: the window is measured in ticks, and a burst would fake traffic that never was.
        next_at = max(next_at + tick_seconds, loop.time())
        await asyncio.sleep(next_at - loop.time())
        fleet.tick()
