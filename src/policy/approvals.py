"""Approval rules: whose decision counts, and when enough approvers have agreed.

An approval is not counted, checked in this order, when:

- `approval.self`            the actor is the agent that proposed the change
- `approval.on_behalf_of`    the actor is the human the agent acts for
- `approval.not_an_approver` the policy lists approvers and the actor is not one
- `approval.role`            the tier demands roles and the actor holds none of them
- `approval.duplicate`       the actor already decided on this change (an approver who
                             approved may still reject: changing one's mind toward
                             safety counts)

A rejection counts from any listed approver (no role is needed to stop a change) and from
the proposer, the agent or the human it acts for, withdrawing its own change; duplicates
are refused too. While the policy lists no approvers, roles cannot be checked and any other
actor may approve. Names compare case-insensitively, ignoring surrounding spaces.

These rules judge who decides, not when: a decision that arrives while the change is not
awaiting approval (before the summary, once it expired, or later) is refused by the
workflow itself, rule `approval.not_awaiting`, and never reaches them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from changegate.models import AgentIdentity, DecisionJudgement, DecisionVerdict, RiskAssessment
from changegate.policy.model import Policy


def judge_decision(
    decision_actor: str,
    *,
    verdict: DecisionVerdict,
    policy: Policy,
    assessment: RiskAssessment,
    agent: AgentIdentity,
    prior: Sequence[tuple[str, DecisionVerdict]],
) -> DecisionJudgement:
    """Judge one approve or reject decision against the rules above."""
    actor = _name(decision_actor)
    approving = verdict == "approve"
    listed = {_name(n): n for n in policy.approvers}

    proposer = _proposer(actor, agent)
    if proposer is not None and approving:
        return _refuse(*proposer)
    if listed and actor not in listed and proposer is None:
        return _refuse(
            "approval.not_an_approver",
            f"{decision_actor} is not an approver; approvers are "
            f"{', '.join(sorted(policy.approvers))}",
        )
    if approving and listed and assessment.roles:
        roles = set(policy.approvers[listed[actor]].roles)
        if not roles & set(assessment.roles):
            held = ", ".join(sorted(roles)) or "no roles"
            return _refuse(
                "approval.role",
                f"a {assessment.tier} change needs an approver with role "
                f"{' or '.join(assessment.roles)}; {decision_actor} holds {held}",
            )
    earlier = next(
        (v for a, v in prior if _name(a) == actor and (approving or v == "reject")), None
    )
    if earlier is not None:
        return _refuse(
            "approval.duplicate",
            f"{decision_actor} already decided ({earlier}) on this change; "
            "each approver counts once",
        )
    counted = "approval" if approving else "rejection"
    note = ""
    if approving and assessment.roles and not listed:
        note = f" (role {' or '.join(assessment.roles)} not checked: the policy lists no approvers)"
    return DecisionJudgement(counted=True, reason=f"{counted} by {decision_actor} counted{note}")


def quorum_reached(approvals: Iterable[str], assessment: RiskAssessment) -> bool:
    """True when enough distinct actors approved for the assessed tier."""
    return len({_name(actor) for actor in approvals}) >= assessment.required_approvals


def approvers_left(
    eligible: Iterable[str], *, proposers: Iterable[str | None], given: Iterable[str] = ()
) -> list[str]:
    """Of the `eligible` approvers, those whose approval would still count: neither a
    proposer (the agent, the human it acts for) nor anyone who already approved (`given`).
    The one rule the page, the live view and the notices name approvers by."""
    barred = {_name(n) for n in [*proposers, *given] if n}
    return sorted(name for name in eligible if _name(name) not in barred)


def _proposer(actor: str, agent: AgentIdentity) -> tuple[str, str] | None:
    """The rule and reason that bar `actor` from approving as the change's proposer."""
    if actor == _name(agent.agent_id):
        return (
            "approval.self",
            f"{agent.agent_id} proposed this change and cannot approve it; another person must",
        )
    if agent.on_behalf_of and actor == _name(agent.on_behalf_of):
        return (
            "approval.on_behalf_of",
            f"{agent.agent_id} proposed this change on behalf of {agent.on_behalf_of}, "
            "who cannot approve it; another person must",
        )
    return None


def _refuse(rule: str, reason: str) -> DecisionJudgement:
    return DecisionJudgement(counted=False, reason=reason, rule=rule)


def _name(actor: str) -> str:
    return actor.strip().casefold()
