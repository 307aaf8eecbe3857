"""SUMMARY: the page an approver reads in under a minute, rendered deterministically.

Pure: the change workflow renders it itself (no activity), so the same input always gives
the same text on replay.
"""

from __future__ import annotations

import json

from pydantic import JsonValue

from changegate.models import (
    ChangePlan,
    ChangeRequest,
    Finding,
    RiskAssessment,
    RolloutSpec,
    Summary,
    SummaryInput,
    TargetObservation,
)

_MARK = {"block": "BLOCK", "warn": "WARN ", "info": "info "}


def render(data: SummaryInput) -> Summary:
    """The summary text: the same input always gives the same text."""
    req, obs, plan = data.request, data.observation, data.plan
    headline = (
        f"{req.agent.agent_id} wants {req.change.operation} on {req.target.label()} "
        f"({len(plan.units())} units)"
    )
    if real := real_change(plan):
        headline += f": {real}"
    sections = [
        f"CHANGE {data.change_id}: {headline}",
        _who(req),
        _section("WHAT THE AGENT DID NOT KNOW", _findings(data.report.findings)),
        _section("WHAT IT WANTS AND WHY", _wants(req)),
        _section("WHAT IT BELIEVES", _beliefs(req, data.report.findings)),
        _section("WHAT IS TRUE NOW", _truth(obs, plan)),
        _section("BLAST RADIUS", _blast(obs, plan)),
        _section("RISK", _risk(data.report.risk)),
        _section("ROLLOUT PLAN", _plan(data.report.rollout or req.rollout, plan)),
        _section("HOW HEALTH IS JUDGED", _health(req)),
        _section("HOW IT ROLLS BACK", _rollback(plan)),
    ]
    return Summary(headline=headline, text="\n\n".join(sections) + "\n")


def real_change(plan: ChangePlan) -> str:
    """The real before → after of every unit, the commonest first by count and the rest by
    name: `pool_size 20 → 24 on 3, 28 → 24 on checkout-2`; empty for an empty plan."""
    keys = sorted({k for u in plan.units() for k in u.after})
    single = len(keys) == 1
    groups: dict[str, list[str]] = {}
    for unit in plan.units():
        diff = ", ".join(
            ("" if single else f"{k} ") + f"{_value(unit.before.get(k))} → {_value(v)}"
            for k, v in unit.after.items()
        )
        groups.setdefault(diff, []).append(unit.unit_id)
    ordered = sorted(groups.items(), key=lambda group: -len(group[1]))
    parts, listed = [], not single
    for index, (diff, units) in enumerate(ordered):
        if index == 0 and len(units) > 1:
            where = f"all {len(units)}" if len(groups) == 1 else str(len(units))
        else:
            where = ", ".join(units[:3]) + (f" and {len(units) - 3} more" if units[3:] else "")
            listed = listed or len(units) > 1
        parts.append(f"{diff} on {where}")
    # A single key is named once, at the front: `pool_size 20 → 24 on 3, 28 → 24 on c-2`.
    return (f"{keys[0]} " if single else "") + ("; " if listed else ", ").join(parts)


def _section(title: str, lines: list[str]) -> str:
    return "\n".join([title, *("  " + line for line in lines)])


def _value(value: JsonValue) -> str:
    return json.dumps(value, sort_keys=True)


def _who(req: ChangeRequest) -> str:
    agent = req.agent
    parts = [f"Proposed by agent {agent.agent_id}"]
    if agent.model:
        parts.append(f"model {agent.model}")
    if agent.session_id:
        parts.append(f"session {agent.session_id}")
    if agent.on_behalf_of:
        parts.append(f"on behalf of {agent.on_behalf_of}")
    risk = f"; agent's risk hint: {req.risk_hint}" if req.risk_hint else ""
    return ", ".join(parts) + risk + "."


def _findings(findings: list[Finding]) -> list[str]:
    if not findings:
        return ["Nothing: every assumption matches the live state."]
    return [f"[{_MARK[f.severity]}] {f.code}: {f.message}" for f in findings]


def _wants(req: ChangeRequest) -> list[str]:
    params = [f"{k} = {_value(v)}" for k, v in sorted(req.change.parameters.items())]
    return [
        f"{req.change.operation}: " + (", ".join(params) or "(no parameters)"),
        f"Intent: {req.intent}",
    ]


def _beliefs(req: ChangeRequest, findings: list[Finding]) -> list[str]:
    wrong = {f.path for f in findings if f.path}
    lines = [
        f"{path} = {_value(value)}  " + ("(WRONG)" if path in wrong else "(holds)")
        for path, value in req.assumptions.items()
    ] or ["(the agent declared no assumptions)"]
    lines += [
        f"read {e.source}: " + (e.excerpt if e.excerpt is not None else f"digest {e.digest}")
        for e in req.evidence
    ] or ["(the agent cited no evidence)"]
    return lines


def _truth(obs: TargetObservation, plan: ChangePlan) -> list[str]:
    keys = sorted({k for u in plan.units() for k in u.before})
    lines = [f"observed {obs.observed_at.isoformat(timespec='seconds')}, {len(obs.units)} units"]
    for unit in obs.units:
        state = ", ".join(f"{k}={_value(unit.state.get(k))}" for k in keys)
        health = {True: "healthy", False: "UNHEALTHY", None: "health unknown"}[unit.healthy]
        lines.append(f"{unit.unit_id}: {state} ({health})")
    return lines


def _blast(obs: TargetObservation, plan: ChangePlan) -> list[str]:
    touched = len(plan.units())
    return [
        f"{touched} of {len(obs.units)} units of {obs.target_label} will change; "
        f"reversible: {'yes' if plan.reversible else 'NO'}"
    ]


def _risk(risk: RiskAssessment | None) -> list[str]:
    if risk is None:
        return ["not assessed"]
    roles = f" holding one of: {', '.join(risk.roles)}" if risk.roles else ""
    return [
        f"tier {risk.tier}: {risk.required_approvals} distinct approver(s){roles}",
        *(f"because {reason}" for reason in risk.reasons),
    ]


def _plan(r: RolloutSpec, plan: ChangePlan) -> list[str]:
    lines = []
    for index, phase in enumerate(plan.phases):
        bake = r.canary_bake_seconds if index == 0 else r.wave_bake_seconds
        names = ", ".join(u.unit_id for u in phase)
        lines.append(f"{phase[0].phase}: {names} (bake {bake:g}s, then analysis)")
    if plan.units():
        lines.append(f"per unit: {real_change(plan)}")
    return lines


def _health(req: ChangeRequest) -> list[str]:
    r = req.rollout
    checks = " and ".join(f"{c.metric} <= {c.max:g}" for c in req.health_checks)
    return [
        f"{checks} on every changed unit",
        f"{r.analysis_count} measurements {r.analysis_interval_seconds:g}s apart per gate; "
        f"tolerates {r.failure_limit} failed and {r.inconclusive_limit} inconclusive",
        "failed or erroring health rolls back; inconclusive (missing data) pauses for a human",
    ]


def _rollback(plan: ChangePlan) -> list[str]:
    return [
        "on a failed gate, an apply error, abort or cancellation: every applied unit is "
        "reverted in reverse order to its value before the change,",
        "then re-read; a unit someone else changed meanwhile is left as found, and a unit "
        "that is not back at its old value ends the change as ROLLBACK_FAILED for a human.",
        "per unit: "
        + ", ".join(f"{u.unit_id} -> {_value(u.before)}" for u in plan.units()[:3])
        + (" ..." if len(plan.units()) > 3 else ""),
    ]
