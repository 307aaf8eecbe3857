"""Context the agent may not have cited: maintenances, other changes, incidents and flags.

Maintenance windows count on the target and on everything it depends on; open incidents
count where their severity freezes the target (`changegate.policy.freeze`, the rule
admission applies too); other active changes count on the target, its dependencies and its
dependents, all following `policy.topology` transitively. Each finding says what is true
and whether the agent's intent or evidence mentions it. Its severity comes from
`policy.findings`: `block` blocks; `extra_approver` and `warn` warn, and `extra_approvals`
counts the former.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime

from pydantic import JsonValue

from changegate.models import ChangeRequest, Contract, Finding
from changegate.policy.actions import severity_for
from changegate.policy.freeze import Freeze, incident_freezes
from changegate.policy.model import Policy
from changegate.policy.state import OpenIncident
from changegate.policy.targets import dependencies_of, dependents_of, matches_any
from changegate.policy.windows import as_utc, format_utc


class ActiveChange(Contract):
    """Another change still running, as the caller read it from the store."""

    change_id: str
    target_label: str
    agent_id: str


@dataclass(frozen=True)
class _Fact:
    code: str
    message: str
    # The agent cited the fact when every term of one group appears in its intent/evidence.
    cited_by: tuple[tuple[str, ...], ...]
    actual: JsonValue


@dataclass(frozen=True)
class _Around:
    label: str
    upstream: list[str]
    downstream: list[str]

    def describe(self, where: str) -> str:
        if where in self.upstream:
            return f"{where}, a dependency of {self.label}"
        if where in self.downstream:
            return f"{where}, which depends on {self.label}"
        return where


def context_findings(
    request: ChangeRequest,
    *,
    policy: Policy,
    now: datetime,
    observation_label: str,
    active_changes: Sequence[ActiveChange],
    open_incident_targets: Set[str] = frozenset(),
    open_incidents: Sequence[OpenIncident] = (),
    flags: Mapping[str, JsonValue],
) -> list[Finding]:
    """Findings for maintenances, active changes nearby, open incidents and flags, in order.

    `open_incidents` are judged by severity; a label in `open_incident_targets` without an
    incident there is an incident of unknown severity, frozen as SEV2.
    """
    label = observation_label
    around = _Around(
        label=label,
        upstream=dependencies_of(label, policy.topology),
        downstream=dependents_of(label, policy.topology),
    )
    freezes = incident_freezes(
        label,
        policy=policy,
        now=as_utc(now),
        incidents=open_incidents,
        labels_only=open_incident_targets,
    )
    facts = [
        *_maintenances(policy, around, as_utc(now)),
        *_changes(active_changes, around),
        *_incidents(freezes),
        *_flags(flags, label),
    ]
    corpus = _corpus(request)
    findings = []
    for fact in facts:
        cited = any(all(t.casefold() in corpus for t in group) for group in fact.cited_by)
        note = (
            "the agent's intent or evidence mentions it"
            if cited
            else "neither the agent's intent nor its evidence mentions it"
        )
        findings.append(
            Finding(
                code=fact.code,
                severity=severity_for(fact.code, policy) or "warn",
                message=f"{fact.message}; {note}",
                actual=fact.actual,
            )
        )
    return findings


def _maintenances(policy: Policy, around: _Around, now: datetime) -> Iterator[_Fact]:
    for window in policy.maintenance_windows:
        for where in (around.label, *around.upstream):
            end = window.active_until(now) if window.covers(where) else None
            if end is None:
                continue
            yield _Fact(
                code="maintenance-window",
                message=f"maintenance window {window.describe()} is active on "
                f"{around.describe(where)} until {format_utc(end)}",
                cited_by=((window.name,),),
                actual={"window": window.name, "target": where, "until": end.isoformat()},
            )


def _changes(active: Sequence[ActiveChange], around: _Around) -> Iterator[_Fact]:
    nearby = {*around.upstream, *around.downstream}
    for change in active:
        if change.target_label == around.label:
            code = "target-change-active"
        elif change.target_label in nearby:
            code = "dependency-change-active"
        else:
            continue
        yield _Fact(
            code=code,
            message=f"change {change.change_id} by {change.agent_id} is active on "
            f"{around.describe(change.target_label)}",
            cited_by=((change.change_id,),),
            actual={"change_id": change.change_id, "target": change.target_label},
        )


def _incidents(freezes: Sequence[Freeze]) -> Iterator[_Fact]:
    for freeze in freezes:
        until = None if freeze.until is None else freeze.until.isoformat()
        yield _Fact(
            code="open-incident",
            message=f"{freeze.describe()}: {freeze.lasts()}",
            cited_by=(
                ("incident", freeze.where),
                *(((freeze.incident_id,),) if freeze.incident_id else ()),
            ),
            actual={
                "target": freeze.where,
                "incident_id": freeze.incident_id,
                "severity": freeze.severity,
                "until": until,
            },
        )


def _flags(flags: Mapping[str, JsonValue], label: str) -> Iterator[_Fact]:
    for pattern, value in flags.items():
        if not matches_any(label, [pattern]):
            continue
        names = _flag_names(value)
        yield _Fact(
            code="flag",
            message=f"flag {pattern} = {value!r} applies to {label}",
            cited_by=((pattern,), *((name,) for name in names if name)),
            actual={"pattern": pattern, "value": value},
        )


def _flag_names(value: JsonValue) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return list(value)
    return []


def _corpus(request: ChangeRequest) -> str:
    texts = [request.intent, *(f"{e.source} {e.excerpt or ''}" for e in request.evidence)]
    return "\n".join(texts).casefold()
