"""The post-incident review, pre-filled from the change's own record."""

from __future__ import annotations

import json

from changegate.incidents.classify import category, incident_id_for, severity, touched_units
from changegate.models import (
    ChangeStatus,
    Incident,
    IncidentCategory,
    Outcome,
)


def build_incident(status: ChangeStatus) -> Incident:
    """The incident for an ended change, with its Markdown review."""
    kind = category(status)
    sev = severity(status, kind)
    req = status.request
    touched = touched_units(status)
    restored = status.outcome == Outcome.ROLLED_BACK
    suggestion = suggest(status, kind)
    title = f"{kind.value}: {req.agent.agent_id} {req.change.operation} on {req.target.label()}"
    opened = status.timeline[-1].at if status.timeline else None
    assert opened is not None, "an ended change has a timeline"
    incident = Incident(
        incident_id=incident_id_for(status.change_id),
        change_id=status.change_id,
        category=kind,
        severity=sev,
        title=title,
        opened_at=opened,
        agent_id=req.agent.agent_id,
        target_label=req.target.label(),
        units_touched=touched,
        restored=restored,
        suggestion=suggestion,
        review_markdown="",
    )
    return incident.model_copy(update={"review_markdown": render_review(status, incident)})


def suggest(status: ChangeStatus, kind: IncidentCategory) -> str:
    """A concrete guardrail change that would have stopped this earlier."""
    req = status.request
    agent = req.agent.agent_id
    if kind == IncidentCategory.CONTEXT_BOUNDARY:
        return (
            "Make stale assumptions block instead of warn, so the agent must re-read before "
            "proposing — policy line: `findings: {stale-assumption: block}`"
        )
    if kind == IncidentCategory.APPLY_ERROR:
        keys = ", ".join(sorted(req.change.parameters))
        return (
            f"Validate the values of {keys} before approval, or narrow what {agent} may set — "
            f"policy line: `agents: {{{agent}: {{operations: [{req.change.operation}]}}}}` "
            "with a reviewed parameter list"
        )
    if kind == IncidentCategory.ROLLBACK_FAILURE:
        return (
            "Require an extra approver for irreversible or hard-to-revert changes on this "
            f"target — policy line: `risk_tiers: {{high: {{approvals: 2, roles: [sre]}}}}` and "
            f"treat {req.target.label()} as high risk"
        )
    if kind == IncidentCategory.APPROVAL_VOIDED:
        label = req.target.label()
        return (
            f"{label} was changed by another writer while this change awaited approval "
            "(finding `approval-voided`). Route that writer through changegate, or declare "
            "when it runs as a maintenance window, which VALIDATE blocks by default — "
            "policy line: "
            f'`maintenance_windows: [{{name: <writer>, targets: ["{label}"], weekly: ...}}]`'
        )
    if kind == IncidentCategory.TIMEOUT:
        return "Check the target's availability in RECON health and refuse when it is degraded"
    if kind == IncidentCategory.OPERATOR_ABORT:
        return "None needed: a human stopped the change and it was reverted"
    checks = ", ".join(f"{c.metric} <= {c.max:g}" for c in req.health_checks)
    return (
        f"The canary caught it ({checks}). To stop it before any write, require a human "
        f"review of {', '.join(sorted(req.change.parameters))} changes by {agent} — policy "
        f"line: `risk_tiers: {{medium: {{approvals: 2}}}}` with `risk_hint` ignored for "
        "deploy-class operations"
    )


def render_review(status: ChangeStatus, incident: Incident) -> str:
    """Markdown answering the five post-incident questions from the workflow's data."""
    req = status.request
    lines = [
        f"# {incident.incident_id}: {incident.title}",
        "",
        f"- severity: **{incident.severity.value}** — category: **{incident.category.value}**",
        f"- change: `{status.change_id}`, outcome **{status.outcome}**",
        f"- agent: `{req.agent.agent_id}` (model {req.agent.model or 'unknown'}, "
        f"session {req.agent.session_id or 'unknown'}"
        + (f", on behalf of {req.agent.on_behalf_of}" if req.agent.on_behalf_of else "")
        + ")",
        "",
        "## What did the agent do?",
        f"{req.change.operation} on `{req.target.label()}`: "
        + ", ".join(f"`{k} = {json.dumps(v)}`" for k, v in sorted(req.change.parameters.items())),
        "",
        "## Why? (intent, assumptions, evidence)",
        f"> {req.intent}",
        "",
    ]
    wrong = {f.path: f for f in status.findings if f.path}
    for path, value in req.assumptions.items():
        finding = wrong.get(path)
        state = f"**stale: actually {json.dumps(finding.actual)}**" if finding else "held"
        lines.append(f"- assumed `{path} = {json.dumps(value)}` — {state}")
    for ev in req.evidence:
        lines.append(f"- read `{ev.source}`: {ev.excerpt or 'digest ' + str(ev.digest)}")
    lines += ["", "## Why did the guardrails not stop it earlier?"]
    if status.findings:
        for f in status.findings:
            lines.append(
                f"- finding `{f.code}` ({f.severity}) was shown to the approver: {f.message}"
            )
    else:
        lines.append("- validation found no mismatch between the agent's assumptions and recon")
    approvers = ", ".join(d.actor for d in status.approvals) or "nobody"
    lines.append(f"- approved by {approvers}")
    for analysis in status.analyses:
        worst = [m for m in analysis.verdict.measurements if m.phase != "successful"]
        shown = f"; last bad one: {worst[-1].reason}" if worst else ""
        lines.append(
            f"- {analysis.gate}: {analysis.verdict.phase}: {analysis.verdict.reason}"
            f" ({len(analysis.verdict.measurements)} measurement(s){shown})"
        )
    lines.append(f"- stopped because: {status.halt_reason}")
    started = next((e.at for e in status.timeline if e.kind == "applied"), None)
    ended = status.timeline[-1].at if status.timeline else None
    exposure = (ended - started).total_seconds() if started and ended else 0.0
    lines += [
        "",
        "## Blast radius",
        f"- units touched: {', '.join(incident.units_touched) or 'none'} "
        f"of {len(status.units)} planned",
        f"- changed for {exposure:.1f}s (first apply to end of rollback)",
        f"- all restored: **{'yes' if incident.restored else 'NO'}**",
    ]
    for unit in status.units:
        if unit.status not in ("pending",):
            lines.append(
                f"  - `{unit.unit_id}` ({unit.phase}): {unit.status}"
                + (f" — {unit.detail}" if unit.detail else "")
            )
    lines += ["", "## Which guardrail change would prevent a recurrence?", incident.suggestion, ""]
    return "\n".join(lines)
