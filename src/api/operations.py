"""`/api/v1/incidents`, `/api/v1/killswitches`, `/api/v1/breakers` and `/api/v1/reconcile`:
what went wrong, the stops (set by hand or tripped by a breaker), and releasing the targets
of changes whose workflows closed unrecorded."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from changegate.api.auth import CurrentPrincipal, forbid, require
from changegate.api.schemas import (
    IncidentDetail,
    IncidentItem,
    KillSwitchAction,
    KillSwitchItem,
    KillSwitchReportBody,
    error_responses,
)
from changegate.api.state import services
from changegate.errors import NotFound
from changegate.service import ReconcileReport, reconcile

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1", tags=["operations"], responses=error_responses(401, 403, 413, 422, 500)
)

AgentId = Annotated[
    str, Path(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.:@/-]{0,127}$", description="The agent's id.")
]


class BreakerItem(BaseModel):
    """A breaker trip: trigger, response, evidence, incident, and its release if released."""

    trip_id: str
    agent_id: str
    breaker: str
    response: str
    reason: str
    evidence: list[dict[str, Any]]
    at: datetime
    incident_id: str | None
    released_at: datetime | None
    released_by: str | None
    release_reason: str | None


class BreakerReleaseBody(BaseModel):
    """Why a person releases an agent's breakers."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


class BreakerReleaseReport(BaseModel):
    """What a release did: the trips released, by whom, and the held changes resumed."""

    agent_id: str
    actor: str
    reason: str
    released: list[BreakerItem]
    resumed: list[str]


IncidentId = Annotated[str, Path(min_length=1, max_length=300, pattern=r"^[A-Za-z0-9_.:@-]+$")]


@router.get("/incidents", response_model=list[IncidentItem])
async def list_incidents(
    request: Request, principal: CurrentPrincipal, open_only: bool = False
) -> list[IncidentItem]:
    """Incidents, newest first; an agent token sees only its own agent's."""
    found = await services(request).operations.incidents(open_only=open_only)
    found = [i for i in found if principal.reads(i.agent_id)]
    return [IncidentItem.model_validate(i, from_attributes=True) for i in found]


@router.get(
    "/incidents/{incident_id}", response_model=IncidentDetail, responses=error_responses(404)
)
async def get_incident(
    request: Request, incident_id: IncidentId, principal: CurrentPrincipal
) -> IncidentDetail:
    """One incident with its pre-filled post-incident review (Markdown)."""
    svc = services(request)
    found = await svc.operations.incident(incident_id)
    if found is None:
        raise NotFound(
            rule="not_found",
            reason=f"no incident {incident_id!r}",
            would_pass="GET /api/v1/incidents lists them",
        )
    if not principal.reads(found.agent_id):
        raise await forbid(
            svc,
            principal,
            rule="auth.owner",
            reason=f"{incident_id} concerns agent {found.agent_id}; token {principal.name!r} "
            f"reads only agent {principal.agent_id!r}'s incidents",
            would_pass="an approver or admin token",
            action="read",
            subject=f"incident:{incident_id}",
        )
    return IncidentDetail.model_validate(found, from_attributes=True)


@router.get("/killswitches", response_model=list[KillSwitchItem])
async def list_kill_switches(request: Request, principal: CurrentPrincipal) -> list[KillSwitchItem]:
    """Every kill switch ever set, engaged or not, global first."""
    svc = services(request)
    await require(svc, principal, "approver", action="list kill switches", subject="killswitches")
    switches = await svc.operations.kill_switches()
    return [KillSwitchItem.model_validate(s, from_attributes=True) for s in switches]


@router.post("/killswitches", response_model=KillSwitchReportBody)
async def set_kill_switch(
    request: Request, body: KillSwitchAction, principal: CurrentPrincipal
) -> KillSwitchReportBody:
    """Engage a switch (pause or abort every running change in scope) or release it."""
    svc = services(request)
    subject = f"killswitch:{body.scope}"
    await require(svc, principal, "approver", action=f"{body.action} kill switch", subject=subject)
    ops = svc.operations
    if body.action == "engage":
        report = await ops.engage(body.scope, body.mode, actor=principal.name, reason=body.reason)
    else:
        report = await ops.release(body.scope, actor=principal.name, reason=body.reason)
    return KillSwitchReportBody(
        scope=report.scope,
        mode=report.mode,
        engaged=report.engaged,
        actor=principal.name,
        reached=report.reached,
    )


@router.get("/breakers", response_model=list[BreakerItem])
async def list_breakers(
    request: Request,
    principal: CurrentPrincipal,
    open_only: bool = False,
    agent: str | None = None,
) -> list[BreakerItem]:
    """Breaker trips, oldest first; only unreleased ones, or one agent's, when asked."""
    svc = services(request)
    await require(svc, principal, "approver", action="list breakers", subject="breakers")
    trips = await svc.operations.breakers(agent_id=agent, open_only=open_only)
    return [BreakerItem.model_validate(t, from_attributes=True) for t in trips]


@router.post("/breakers/{agent_id:path}/release", response_model=BreakerReleaseReport)
async def release_breaker(
    request: Request, agent_id: AgentId, body: BreakerReleaseBody, principal: CurrentPrincipal
) -> BreakerReleaseReport:
    """Release the agent's open breakers and resume what their pause held (a person only:
    approver or admin; the release is recorded with the token's name and the reason)."""
    svc = services(request)
    subject = f"breaker:{agent_id}"
    await require(svc, principal, "approver", action="release breaker", subject=subject)
    report = await svc.operations.release_breaker(
        agent_id, actor=principal.name, reason=body.reason
    )
    if not report.released:
        raise NotFound(
            rule="breaker.none_open",
            reason=f"agent {agent_id} has no open breaker",
            would_pass="GET /api/v1/breakers?open_only=true lists the open ones",
        )
    return BreakerReleaseReport(
        agent_id=agent_id,
        actor=report.actor,
        reason=report.reason,
        released=[BreakerItem.model_validate(t, from_attributes=True) for t in report.released],
        resumed=report.resumed,
    )


@router.post(
    "/incidents/{incident_id}/close",
    response_model=IncidentItem,
    responses=error_responses(404),
)
async def close_incident(
    request: Request, incident_id: IncidentId, principal: CurrentPrincipal
) -> IncidentItem:
    """Close an incident, lifting the freeze it put on its target (approver or admin)."""
    svc = services(request)
    subject = f"incident:{incident_id}"
    await require(svc, principal, "approver", action="close incident", subject=subject)
    closed = await svc.operations.close_incident(incident_id)
    if closed is None:
        raise NotFound(
            rule="not_found",
            reason=f"no incident {incident_id!r}",
            would_pass="GET /api/v1/incidents lists them",
        )
    return IncidentItem.model_validate(closed, from_attributes=True)


@router.post("/reconcile", response_model=ReconcileReport, responses=error_responses(503))
async def reconcile_changes(
    request: Request, principal: CurrentPrincipal, dry_run: bool = False
) -> ReconcileReport:
    """Release the targets of changes whose workflows closed without recording it (admin).

    Workers do this on their own every `reconcile_interval_seconds`; `dry_run` lists what
    would be released and writes nothing.
    """
    svc = services(request)
    await require(svc, principal, "admin", action="reconcile", subject="changes")
    return await reconcile(
        svc.changes.temporal,
        await svc.store(),
        missing_grace=timedelta(seconds=svc.settings.ticket_ttl_seconds),
        dry_run=dry_run,
        actor=f"reconciler (run by {principal.name})",
    )
