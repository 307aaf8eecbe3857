"""Risk tiers: how dangerous a change is, and what its tier therefore demands.

The tier is the highest that any of these rules gives, applied in order:

1. Blast radius: up to `LOW_UNITS` units is low, up to `MEDIUM_UNITS` medium, more high.
2. Operation class, as the target's kind declares it for the operation
   (`Operation.operation_class`): `destructive` is high, `deploy` at least medium, `scale`
   and `config` set no floor. Only for an operation no installed kind describes does the
   name decide: `destructive` when the operation names delete, drop, destroy, truncate,
   terminate, purge or wipe; `deploy` when it or a parameter key names a version, image,
   release, deploy, upgrade or build; `config` otherwise. (Admission refuses such an
   operation before it gets here; the fallback keeps risk total for callers that have no
   registry, such as a replayed history.)
3. Any finding of severity `warn` or `block` raises the tier by one step (once).
4. The agent's `risk_hint` may raise the tier; it never lowers it.

Reversibility sets no floor: every operation a target kind offers today is reverted by
writing each unit's `before` back, and the tier is set in VALIDATE, before any plan exists.

The tier then demands its quorum plus one approver per `extra_approver` finding, its
roles, and canary minimums: the request keeps its own canary size and bake when larger.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from changegate.models import ChangeRequest, Finding, RiskAssessment, RiskLevel
from changegate.models.request import OperationClass
from changegate.policy.actions import extra_approvals
from changegate.policy.model import RISK_LEVELS, Policy

LOW_UNITS = 5
MEDIUM_UNITS = 20
_FLOORS: dict[OperationClass, RiskLevel] = {
    "config": "low",
    "scale": "low",
    "deploy": "medium",
    "destructive": "high",
}
_DESTRUCTIVE = re.compile(r"delete|drop|destroy|truncate|terminate|purge|wipe")
_DEPLOY = re.compile(r"version|image|release|deploy|upgrade|build")


def operation_class(
    request: ChangeRequest, *, declared: OperationClass | None = None
) -> tuple[OperationClass, str]:
    """The request's operation class and what put it there: the kind's `declared` class,
    else the operation's name."""
    operation = request.change.operation
    if declared is not None:
        return declared, f"{request.target.kind} declares {operation} {declared}"
    if _DESTRUCTIVE.search(operation):
        return "destructive", f"operation {operation}"
    if _DEPLOY.search(operation):
        return "deploy", f"operation {operation}"
    keys = sorted(k for k in request.change.parameters if _DEPLOY.search(k.lower()))
    if keys:
        return "deploy", f"parameters {', '.join(keys)}"
    return "config", f"operation {operation} on {', '.join(request.change.parameters) or '-'}"


def risk_tier(
    request: ChangeRequest,
    *,
    policy: Policy,
    unit_count: int,
    findings: Sequence[Finding],
    declared: OperationClass | None = None,
) -> RiskAssessment:
    """Assess the request's tier by the rules above and what the policy demands of it;
    `declared` is the operation class the target's kind gives the operation."""
    by_size: RiskLevel = (
        "low" if unit_count <= LOW_UNITS else "medium" if unit_count <= MEDIUM_UNITS else "high"
    )
    tier = by_size
    reasons = [f"blast radius: {unit_count} unit(s) -> {by_size}"]

    kind, why = operation_class(request, declared=declared)
    tier = _raise(tier, _FLOORS[kind], reasons=reasons, why=f"operation class {kind} ({why})")

    concerning = [f for f in findings if f.severity in ("warn", "block")]
    if concerning:
        codes = ", ".join(sorted({f.code for f in concerning}))
        bumped = RISK_LEVELS[min(RISK_LEVELS.index(tier) + 1, len(RISK_LEVELS) - 1)]
        tier = _raise(
            tier, bumped, reasons=reasons, why=f"{len(concerning)} finding(s) to heed ({codes})"
        )
    if request.risk_hint is not None:
        tier = _raise(
            tier,
            request.risk_hint,
            reasons=reasons,
            why=f"the agent's risk hint {request.risk_hint}",
        )

    demands = policy.risk_tiers.get(tier)
    extra = extra_approvals(findings, policy)
    quorum = f"{demands.approvals} approval(s)"
    if demands.roles:
        quorum += f" from role(s) {', '.join(demands.roles)}"
    if extra:
        quorum += f" + {extra} for finding(s) that need another approver"
    reasons.append(f"{tier} tier requires {quorum}")

    canary_units = max(request.rollout.canary_units, demands.canary_units)
    if 0 < unit_count < canary_units:
        reasons.append(f"canary of {canary_units} capped at the {unit_count} unit(s) there are")
        canary_units = unit_count
    return RiskAssessment(
        tier=tier,
        reasons=reasons,
        required_approvals=demands.approvals + extra,
        roles=list(demands.roles),
        approvers=sorted(policy.eligible_approvers(demands)),
        canary_units=canary_units,
        canary_bake_seconds=max(request.rollout.canary_bake_seconds, demands.canary_bake_seconds),
    )


def _raise(tier: RiskLevel, to: RiskLevel, *, reasons: list[str], why: str) -> RiskLevel:
    if RISK_LEVELS.index(to) > RISK_LEVELS.index(tier):
        reasons.append(f"{why} -> {tier} raised to {to}")
        return to
    reasons.append(f"{why} -> stays {tier}" if to != tier else f"{why} -> {tier}")
    return tier
