"""`/healthz` and `/readyz`: whether the API process answers, and whether it can serve.

Neither needs a token: a load balancer or an orchestrator's probe calls them. `/readyz`
asks each dependency one trivial question (the audit store `SELECT 1`, Temporal its gRPC
health check), each within `CHECK_TIMEOUT_SECONDS`, and answers 503 unless all answer.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Literal

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from changegate.api.state import Services, services
from changegate.store import Store

__all__ = ["CHECK_TIMEOUT_SECONDS", "Check", "Liveness", "Readiness", "router"]

CHECK_TIMEOUT_SECONDS = 2.0
"""How long one dependency may take to answer before it counts as down."""

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    """The process answers."""

    status: Literal["ok"] = "ok"


class Check(BaseModel):
    """One dependency's answer."""

    status: Literal["ok", "unavailable"]
    detail: str = Field(default="", description="Why it counts as unavailable.")


class Readiness(BaseModel):
    """Whether every dependency answered, and each one's check."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, Check] = Field(description="By dependency: audit_store, temporal.")


@router.get("/healthz", response_model=Liveness)
async def healthz() -> Liveness:
    """200 while the process answers; it asks no dependency."""
    return Liveness()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A dependency did not answer."}},
)
async def readyz(request: Request, response: Response) -> Readiness:
    """200 when the audit store and Temporal both answer a trivial question, else 503."""
    svc = services(request)
    store, temporal = await asyncio.gather(_audit_store(svc), _temporal(svc))
    checks = {"audit_store": store, "temporal": temporal}
    ready = all(check.status == "ok" for check in checks.values())
    response.status_code = 200 if ready else 503
    return Readiness(status="ready" if ready else "not_ready", checks=checks)


async def _audit_store(svc: Services) -> Check:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            store = await svc.store()
            await asyncio.to_thread(_select_one, store)
    except TimeoutError:
        return _down(f"no answer within {CHECK_TIMEOUT_SECONDS:g}s")
    except Exception as exc:  # a probe reports any failure as "not ready"
        # The driver's message may carry the URL or SQL; the class name says enough here.
        return _down(f"the audit store did not answer ({type(exc).__name__})")
    return Check(status="ok")


def _select_one(store: Store) -> None:
    with store.engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))


async def _temporal(svc: Services) -> Check:
    timeout = timedelta(seconds=CHECK_TIMEOUT_SECONDS)
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS + 1):
            healthy = await svc.changes.temporal.service_client.check_health(timeout=timeout)
    except TimeoutError:
        return _down(f"no answer within {CHECK_TIMEOUT_SECONDS:g}s")
    except Exception as exc:  # a probe reports any failure as "not ready"
        return _down(f"Temporal did not answer ({type(exc).__name__}: {exc})")
    return Check(status="ok") if healthy else _down("Temporal reports itself not serving")


def _down(detail: str) -> Check:
    return Check(status="unavailable", detail=detail)
