"""`/api/v1/changes`: submit, list, read, decide and control changes."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from changegate.api.auth import CurrentPrincipal, Principal, forbid, require
from changegate.api.schemas import (
    ChangeLinks,
    ControlBody,
    ControlResponse,
    DecisionBody,
    DecisionResponse,
    SubmitResponse,
    WhoAmI,
    error_responses,
)
from changegate.api.state import Services, services
from changegate.errors import ChangeNotFound, InvalidInput, Refused
from changegate.models import (
    ChangeRef,
    ChangeRequest,
    ChangeStatus,
    Control,
    DecisionRequest,
    DecisionVerdict,
    Outcome,
    Stage,
)
from changegate.service.dry_run import DryRunReport
from changegate.service.dry_run import dry_run as check_change
from changegate.service.visibility import change_query

__all__ = ["ChangeId", "change_links", "decide", "router", "visible_status"]

router = APIRouter(
    prefix="/api/v1", tags=["changes"], responses=error_responses(401, 403, 413, 422, 500, 503)
)

ChangeId = Annotated[
    str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")
]
_Filter = Annotated[str | None, Query(min_length=1, max_length=300, pattern=r"^[^\x00-\x1f\x7f]+$")]

_WOULD_PASS = {
    "approval.self": "an approval by an approver other than the proposing agent",
    "approval.on_behalf_of": "an approval by someone other than the human the agent acts for",
    "approval.not_an_approver": "a token named after an approver the policy lists",
    "approval.role": "an approval by an approver holding one of the tier's roles",
    "approval.duplicate": "an approval by another approver",
}


def change_links(services: Services, change_id: str) -> ChangeLinks:
    """The API paths, approval page and Temporal web UI page of a change."""
    base = f"/api/v1/changes/{change_id}"
    return ChangeLinks(
        status=base,
        approve=f"{base}/approve",
        reject=f"{base}/reject",
        page=f"/ui/changes/{change_id}",
        workflow=services.settings.workflow_url(change_id),
    )


@router.get("/whoami", response_model=WhoAmI)
async def whoami(principal: CurrentPrincipal) -> WhoAmI:
    """The caller, as its token identifies it."""
    return WhoAmI(
        token_id=principal.token_id,
        name=principal.name,
        role=principal.role,
        agent_id=principal.agent_id,
        capabilities=sorted(principal.capabilities),
    )


@router.post(
    "/changes",
    status_code=201,
    response_model=SubmitResponse | DryRunReport,
    responses={**error_responses(409, 429), 200: {"model": DryRunReport}},
)
async def submit(
    request: Request,
    response: Response,
    body: ChangeRequest,
    principal: CurrentPrincipal,
    dry_run: Annotated[
        bool,
        Query(
            description="Start nothing: answer 200 with the admission verdict, the risk tier "
            "and VALIDATE's findings on the target's live state (a read-only observation)."
        ),
    ] = False,
) -> SubmitResponse | DryRunReport:
    """Submit a change request; it passes admission or is refused with the rule that says no.

    With `dry_run=true` nothing is started or reserved and nothing counts against the
    agent's limits; only an audit line records that the dry run was asked, by whom.
    """
    svc = services(request)
    subject = f"target:{body.target.label()}"
    await require(svc, principal, "agent", action="submit", subject=subject)
    if not principal.acts_for(body.agent.agent_id):
        raise await forbid(
            svc,
            principal,
            rule="auth.agent_id",
            reason=f"token {principal.name!r} acts as agent {principal.agent_id!r}, but the "
            f"request names agent {body.agent.agent_id!r}",
            would_pass=f"the same request with agent.agent_id {principal.agent_id!r}",
            action="submit",
            subject=subject,
            request=body,
        )
    if dry_run:
        response.status_code = 200
        return await check_change(
            svc.changes, body, asked_by=principal.label, settings=svc.settings
        )
    change_id = await svc.changes.submit(body)
    response.headers["Location"] = f"/api/v1/changes/{change_id}"
    return SubmitResponse(change_id=change_id, links=change_links(svc, change_id))


@router.get("/changes", response_model=list[ChangeRef])
async def list_changes(
    request: Request,
    principal: CurrentPrincipal,
    agent: _Filter = None,
    target: _Filter = None,
    stage: Stage | None = None,
    outcome: Annotated[
        Outcome | None, Query(description="Only changes that ended so (DONE, ROLLED_BACK, ...).")
    ] = None,
    pending: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[ChangeRef]:
    """Changes, newest first; an agent token sees only its own agent's changes."""
    svc = services(request)
    if not principal.can("approver"):
        if principal.agent_id is None:
            # Without a filter the query would list every agent's changes.
            raise await forbid(
                svc,
                principal,
                rule="auth.role",
                reason=f"{principal.label} acts for no agent and may not read every change",
                would_pass="an agent token (it lists its agent's changes) or an approver token",
                action="list",
                subject="changes",
            )
        if agent is not None and not principal.reads(agent):
            raise await forbid(
                svc,
                principal,
                rule="auth.owner",
                reason=f"token {principal.name!r} may list only agent "
                f"{principal.agent_id!r}'s changes, not {agent!r}'s",
                would_pass=f"agent={principal.agent_id} or no agent filter",
                action="list",
                subject=f"agent:{agent}",
            )
        agent = principal.agent_id
    if pending:
        stage = Stage.AWAITING_APPROVAL
    query = change_query(agent=agent, target=target, stage=stage, outcome=outcome)
    return await svc.changes.list(query, limit=limit)


async def visible_status(svc: Services, principal: Principal, change_id: str) -> ChangeStatus:
    """The change's status, if the principal may read it (an agent reads only its own)."""
    status = await svc.changes.status(change_id)
    if not principal.reads(status.request.agent.agent_id):
        raise await forbid(
            svc,
            principal,
            rule="auth.owner",
            reason=f"{change_id} was proposed by {status.request.agent.agent_id}; token "
            f"{principal.name!r} reads only agent {principal.agent_id!r}'s changes",
            would_pass="an approver or admin token",
            action="read",
            subject=f"change:{change_id}",
        )
    return status


@router.get("/changes/{change_id}", response_model=ChangeStatus, responses=error_responses(404))
async def get_change(
    request: Request, change_id: ChangeId, principal: CurrentPrincipal
) -> ChangeStatus:
    """A change's full status: stage, summary, findings, units, approvals and timeline."""
    return await visible_status(services(request), principal, change_id)


MAX_REASON = 2000
"""The longest decision reason or comment recorded."""


def checked_reason(verdict: DecisionVerdict, reason: str) -> str:
    """The decision's reason, stripped; a rejection without one, or any reason too long to
    record, is a 422 that records nothing (the same rule for the API, the page and the CLI)."""
    reason = reason.replace("\r\n", "\n").strip()
    if verdict == "reject" and not reason:
        raise InvalidInput(
            422,
            rule="decision.reason_required",
            reason="a rejection needs a reason: it is recorded with your name in the change's "
            "history and the audit store, and tells the agent why; nothing was recorded",
            would_pass="a reject with a reason, such as 'the pool is already sized for peak; "
            "see the capacity dashboard'",
        )
    if len(reason) > MAX_REASON:
        raise InvalidInput(
            422,
            rule="decision.reason_too_long",
            reason=f"the reason has {len(reason)} characters; at most {MAX_REASON} are "
            "recorded; nothing was recorded",
            would_pass=f"a reason of at most {MAX_REASON} characters",
        )
    return reason


async def decide(
    svc: Services, principal: Principal, change_id: str, verdict: DecisionVerdict, reason: str
) -> DecisionResponse:
    """Send the principal's decision; 422 for a missing or oversized reason, 409 naming the
    rule when it does not count."""
    await require(svc, principal, "approver", action=verdict, subject=f"change:{change_id}")
    reason = checked_reason(verdict, reason)
    try:
        judgement = await svc.changes.decide(
            change_id, DecisionRequest(actor=principal.name, verdict=verdict, reason=reason)
        )
    except ChangeNotFound as exc:
        ended = await _ended(svc, change_id)
        if ended is None:
            raise
        raise ended from exc
    if not judgement.counted:
        rule = judgement.rule or "approval"
        raise Refused(409, rule=rule, reason=judgement.reason, would_pass=_WOULD_PASS.get(rule, ""))
    return DecisionResponse(
        change_id=change_id,
        verdict=verdict,
        actor=principal.name,
        counted=True,
        reason=judgement.reason,
    )


async def _ended(svc: Services, change_id: str) -> Refused | None:
    try:
        status = await svc.changes.status(change_id)
    except ChangeNotFound:
        return None
    outcome = status.outcome.value if status.outcome else "already"
    return Refused(
        409,
        rule="change.ended",
        reason=f"{change_id} has ended ({outcome}); it takes no more decisions or controls",
        would_pass="a new change request",
    )


@router.post(
    "/changes/{change_id}/approve",
    response_model=DecisionResponse,
    responses=error_responses(404, 409),
)
async def approve(
    request: Request,
    change_id: ChangeId,
    principal: CurrentPrincipal,
    body: DecisionBody | None = None,
) -> DecisionResponse:
    """Approve as the token's holder; any `actor` in the body is ignored."""
    reason = body.reason if body else ""
    return await decide(services(request), principal, change_id, "approve", reason)


@router.post(
    "/changes/{change_id}/reject",
    response_model=DecisionResponse,
    responses=error_responses(404, 409),
)
async def reject(
    request: Request,
    change_id: ChangeId,
    principal: CurrentPrincipal,
    body: DecisionBody | None = None,
) -> DecisionResponse:
    """Reject as the token's holder; any `actor` in the body is ignored."""
    reason = body.reason if body else ""
    return await decide(services(request), principal, change_id, "reject", reason)


def _control_route(verb: Literal["pause", "resume", "abort"], doc: str) -> None:
    async def control(
        request: Request,
        change_id: ChangeId,
        principal: CurrentPrincipal,
        body: ControlBody | None = None,
    ) -> ControlResponse:
        svc = services(request)
        await require(svc, principal, "approver", action=verb, subject=f"change:{change_id}")
        signal = getattr(svc.changes, verb)
        try:
            await signal(
                change_id, Control(actor=principal.name, reason=body.reason if body else "")
            )
        except ChangeNotFound as exc:
            ended = await _ended(svc, change_id)
            if ended is None:
                raise
            raise ended from exc
        return ControlResponse(change_id=change_id, sent=verb, actor=principal.name)

    control.__doc__ = doc
    router.add_api_route(
        f"/changes/{{change_id}}/{verb}",
        control,
        methods=["POST"],
        status_code=202,
        response_model=ControlResponse,
        responses=error_responses(404, 409),
        name=verb,
        summary=doc.rstrip("."),
    )


_control_route("pause", "Hold a change at its next safe point.")
_control_route("resume", "Continue a held change where it stopped.")
_control_route("abort", "Abort a change; whatever was applied is rolled back.")
