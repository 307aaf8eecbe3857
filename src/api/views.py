"""What the approval pages show, computed from a change's status: plain values, no HTML."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import JsonValue

from changegate.models import ChangeRef, ChangeStatus, Stage
from changegate.policy import Policy, RiskTier
from changegate.policy import approvers_left as left_to_approve
from changegate.summary import real_change

__all__ = [
    "age",
    "approvers_left",
    "blast_radius",
    "change_page",
    "listing_row",
    "live",
    "pending_row",
    "state_label",
]


def state_label(status: ChangeStatus) -> str:
    """`DONE`, or the stage with `(paused)` while it runs."""
    if status.outcome is not None:
        return status.outcome.value
    return status.stage.value + (" (paused)" if status.paused else "")


def age(since: datetime | None, now: datetime) -> str:
    """A short age such as `4m 10s` or `2h 5m`."""
    if since is None:
        return "?"
    seconds = max(0, int((now - since).total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86_400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86_400}d {seconds % 86_400 // 3600}h"


def _submitted(status: ChangeStatus) -> datetime | None:
    return status.timeline[0].at if status.timeline else None


def _value(value: JsonValue) -> str:
    return json.dumps(value, sort_keys=True)


def _approvals(status: ChangeStatus) -> str:
    return f"{len(status.approvals)}/{status.approvals_required}"


def pending_row(status: ChangeStatus, *, now: datetime) -> dict[str, Any]:
    """One row of the pending list."""
    req = status.request
    intent = req.intent if len(req.intent) <= 140 else req.intent[:137] + "..."
    return {
        "change_id": status.change_id,
        "tier": status.risk.tier if status.risk else "unassessed",
        "age": age(_submitted(status), now),
        "agent": req.agent.agent_id,
        "target": req.target.label(),
        "operation": req.change.operation,
        "approvals": _approvals(status),
        "intent": intent,
        "deadline": status.approval_deadline,
    }


def approvers_left(status: ChangeStatus, *, policy: Policy, viewer: str) -> dict[str, Any]:
    """Who may still approve, by the policy's approval rules, and whether `viewer` may.

    Listed approvers holding one of the tier's roles count, except those who already
    approved and the proposer (the agent, or the human it acts for). While the policy lists
    no approvers, anyone with an approver or admin token but the proposer may.
    """
    agent = status.request.agent
    proposers = [agent.agent_id, *([agent.on_behalf_of] if agent.on_behalf_of else [])]
    given = [d.actor for d in status.approvals]
    if not policy.approvers:
        barred = {_name(n) for n in [*proposers, *given]}
        return {
            "who": f"any approver or admin token except {', '.join(proposers)} "
            "(the policy names no approvers)",
            "viewer_may": _name(viewer) not in barred,
        }
    roles = status.risk.roles if status.risk else []
    eligible = policy.eligible_approvers(RiskTier(roles=roles))
    names = left_to_approve(eligible, proposers=proposers, given=given)
    role_note = f" (role {' or '.join(roles)})" if roles else ""
    return {
        "who": (", ".join(names) + role_note) if names else "nobody: no listed approver is left",
        "viewer_may": _name(viewer) in {_name(n) for n in names},
    }


def _name(actor: str) -> str:
    return actor.strip().casefold()


def listing_row(ref: ChangeRef) -> dict[str, Any]:
    """One row of the latest changes: the listing's fields, the workflow's as `status`."""
    return {**ref.model_dump(), "status": ref.workflow_status}


def blast_radius(status: ChangeStatus, *, policy: Policy) -> dict[str, Any]:
    """Units the change touches out of the target's, and the targets tied to it."""
    label = status.request.target.label()
    touched = [u.unit_id for u in status.plan.units()] if status.plan else []
    total = len(status.observation.units) if status.observation else None
    return {
        "target": label,
        "touched": touched,
        "total": total,
        "reversible": status.plan.reversible if status.plan else None,
        "depends_on": sorted(policy.topology.get(label, [])),
        "dependents": sorted(t for t, needs in policy.topology.items() if label in needs),
    }


def change_page(
    status: ChangeStatus, *, policy: Policy, now: datetime, viewer: str
) -> dict[str, Any]:
    """Everything the change page renders, as plain values the template escapes."""
    req = status.request
    plan = [
        {
            "phase": u.phase,
            "unit_id": u.unit_id,
            "change": ", ".join(
                f"{k}: {_value(u.before.get(k))} → {_value(v)}" for k, v in sorted(u.after.items())
            ),
        }
        for u in (status.plan.units() if status.plan else [])
    ]
    return {
        "change_id": status.change_id,
        "state": state_label(status),
        "awaiting": status.stage == Stage.AWAITING_APPROVAL and status.outcome is None,
        "ended": status.ended,
        "agent": req.agent,
        "intent": req.intent,
        "target": req.target.label(),
        "operation": req.change.operation,
        "real_change": real_change(status.plan) if status.plan else "",
        "parameters": [(k, _value(v)) for k, v in sorted(req.change.parameters.items())],
        "assumptions": [(k, _value(v)) for k, v in req.assumptions.items()],
        "evidence": req.evidence,
        "risk": status.risk,
        "approvals": _approvals(status),
        "approvers": [(d.actor, d.reason) for d in status.approvals],
        "deadline": status.approval_deadline,
        "age": age(_submitted(status), now),
        "findings": status.findings,
        "summary": status.summary,
        "blast": blast_radius(status, policy=policy),
        "plan": plan,
        "halt_reason": status.halt_reason,
        "incident_id": status.incident_id,
        "left": approvers_left(status, policy=policy, viewer=viewer),
        **live(status),
    }


def live(status: ChangeStatus) -> dict[str, Any]:
    """What changes while a change runs: state, approvals, units and timeline."""
    return {
        "state": state_label(status),
        "ended": status.ended,
        "awaiting": status.stage == Stage.AWAITING_APPROVAL and status.outcome is None,
        "approvals": _approvals(status),
        "units": [
            {"unit_id": u.unit_id, "phase": u.phase, "status": u.status, "detail": u.detail or ""}
            for u in status.units
        ],
        "timeline": [
            {
                "at": e.at.strftime("%H:%M:%S"),
                "stage": e.stage.value,
                "kind": e.kind,
                "message": e.message,
                "actor": e.actor or "",
            }
            for e in status.timeline
        ],
    }
