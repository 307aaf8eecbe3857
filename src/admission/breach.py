"""The incident a circuit breaker's trip opens: `agent-guardrail-breach`, review pre-filled.

Severity: SEV2 when the trip aborts the agent's in-flight changes, SEV3 otherwise (a pause
or throttle touched nothing). The incident's `change_id` holds the trip id and its
`target_label` is the agent's kill-switch scope (`agent:<id>`): a breach is the agent's,
not a target's, so it freezes no target.
"""

from __future__ import annotations

import json

from changegate.models import IncidentCategory, IncidentSeverity, KillSwitchScope
from changegate.policy.breakers import Trip
from changegate.store import IncidentRecord

GUARDRAIL_BREACH = IncidentCategory.AGENT_GUARDRAIL_BREACH.value
"""The incident category of a breaker trip."""

_WHAT = {
    "throttle": "throttled to a lower rate",
    "pause": "paused: its kill switch holds its in-flight changes at their next safe point",
    "abort": "stopped: its kill switch aborts its in-flight changes, which roll back",
}

_HELD = {
    "throttle": "Its submissions beyond the lower rate are refused",
    "pause": "Its submissions are refused",
    "abort": "Its submissions are refused",
}


def breach_incident(trip: Trip) -> IncidentRecord:
    """The incident for `trip`, with its Markdown review."""
    severity = IncidentSeverity.SEV2 if trip.response == "abort" else IncidentSeverity.SEV3
    title = f"{GUARDRAIL_BREACH}: breaker {trip.breaker} tripped for {trip.agent_id}"
    suggestion = suggest_breach(trip)
    return IncidentRecord(
        incident_id=f"inc-{trip.trip_id}",
        change_id=trip.trip_id,
        category=GUARDRAIL_BREACH,
        severity=severity.value,
        opened_at=trip.at,
        target_label=str(KillSwitchScope.for_agent(trip.agent_id)),
        agent_id=trip.agent_id,
        title=title,
        review_markdown=render_breach(trip, title=title, severity=severity, suggestion=suggestion),
        data={
            "trip_id": trip.trip_id,
            "breaker": trip.breaker,
            "response": trip.response,
            "evidence": trip.evidence,
            "restored": True,
            "suggestion": suggestion,
        },
    )


def suggest_breach(trip: Trip) -> str:
    """What to look at before releasing, and the policy line that tunes the breaker."""
    look = {
        "scope_refusals": "why the agent proposes changes outside its scope (a prompt or tool "
        "that names the wrong targets or operations)",
        "loop_refusals": "why the agent repeats a change that failed, or undoes the last one",
        "rate_refusals": "why the agent retries faster than its rate allows (honour Retry-After)",
        "changes_per_day": "whether the agent's volume of changes is intended",
        "units_per_day": "whether the agent's volume of changed units is intended",
        "failed_changes": "why the agent's changes keep failing their health gates",
        "rollbacks_in_a_row": "why every recent change of the agent rolled back",
    }[trip.breaker]
    return (
        f"Read the evidence, then check {look}. If the breaker is too eager, raise it — "
        f"policy line: `breakers: {{{trip.agent_id}: {{{trip.breaker}: {{count: N}}}}}}`"
    )


def render_breach(trip: Trip, *, title: str, severity: IncidentSeverity, suggestion: str) -> str:
    """Markdown answering the post-incident questions from the trip's own record."""
    lines = [
        f"# inc-{trip.trip_id}: {title}",
        "",
        f"- severity: **{severity.value}** — category: **{GUARDRAIL_BREACH}**",
        f"- agent: `{trip.agent_id}` — breaker `{trip.breaker}`, response **{trip.response}**",
        f"- tripped at {trip.at.isoformat()}",
        "",
        "## What did the agent do?",
        trip.reason,
        "",
        "## Evidence",
        *(f"- `{json.dumps(item, sort_keys=True)}`" for item in trip.evidence),
        "",
        "## What did the guardrail do?",
        f"The agent was {_WHAT[trip.response]}. {_HELD[trip.response]} (rule "
        f"`{trip.rule}`) until a person releases the breaker: "
        f"`changegate breaker release {trip.agent_id} --reason ...`.",
        "",
        "## Which guardrail change would prevent a recurrence?",
        suggestion,
        "",
    ]
    return "\n".join(lines)
