"""VALIDATE: the change against its kind, the agent's beliefs and the context it did not
cite, against live state."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from temporalio import activity

from changegate.activities.heartbeat import heartbeats
from changegate.admission import read_open_incidents
from changegate.context import ContextSource, FileContextSource, HttpContextSource, gather_flags
from changegate.errors import InvalidChange, InvalidTarget
from changegate.kinds import KindRegistry
from changegate.models import Finding, ValidateInput, ValidationReport
from changegate.models.request import OperationClass
from changegate.policy import (
    ActiveChange,
    Policy,
    apply_finding_actions,
    check_assumptions,
    context_findings,
    risk_tier,
)
from changegate.policy.assumptions import direction_findings
from changegate.policy.rollout import effective_rollout
from changegate.policy.state import OpenIncident
from changegate.policy.targets import dependencies_of, dependents_of
from changegate.store import Store, active_changes


def context_sources(policy: Policy, *, base: Path | None = None) -> list[ContextSource]:
    """The context sources the policy names; relative file paths are taken from `base`."""
    sources: list[ContextSource] = []
    for spec in policy.context_sources:
        if spec.kind == "file":
            path = Path(spec.path)
            sources.append(FileContextSource(path if base is None else base / path))
        else:
            sources.append(HttpContextSource(spec.url))
    return sources


def blast_radius(data: ValidateInput, policy: Policy) -> list[Finding]:
    """A blocking finding when the change touches more units than the agent may."""
    scoped = policy.scope_for(data.request.agent.agent_id)
    units = len(data.observation.units)
    if scoped is None or scoped[1].max_units is None or units <= scoped[1].max_units:
        return []
    key, scope = scoped
    return [
        Finding(
            code="blast-radius",
            severity="block",
            path="unit_count",
            expected=scope.max_units,
            actual=units,
            message=f"{data.request.target.label()} has {units} units, more than the "
            f"{scope.max_units} agents[{key!r}].max_units allows; narrow the selector "
            f"(e.g. `instances:`) to at most {scope.max_units} units",
        )
    ]


def kind_findings(data: ValidateInput, kinds: KindRegistry) -> list[Finding]:
    """A blocking `invalid-change` finding when the target's kind refuses the change.

    Admission runs the same check; this is the last line of defence for a workflow that
    reached VALIDATE another way (started by hand, or admitted by an older front door).
    """
    try:
        kind = kinds.get(data.request.target.kind)
        kinds.check(kind, data.request)
    except (InvalidTarget, InvalidChange) as exc:
        return [
            Finding(
                code="invalid-change",
                severity="block",
                path=exc.field,
                message=f"{exc.reason}; would pass: {exc.would_pass}",
            )
        ]
    return []


def declared_class(data: ValidateInput, kinds: KindRegistry) -> OperationClass | None:
    """The operation class the target's kind declares for the operation, if it knows it."""
    if data.request.target.kind not in kinds.names():
        return None
    operation = kinds.get(data.request.target.kind).operations.get(data.request.change.operation)
    return None if operation is None else operation.class_for(data.request.change.parameters)


class ValidationActivities:
    """Runs every check of VALIDATE and gives the change its risk tier."""

    def __init__(
        self,
        *,
        policy: Policy,
        store: Store,
        sources: Sequence[ContextSource] | None = None,
        kinds: KindRegistry | None = None,
    ) -> None:
        """Check against `policy` and the target kinds (by default every installed one),
        with other changes and incidents read from `store`."""
        self._policy = policy
        self._store = store
        self._sources = list(sources) if sources is not None else context_sources(policy)
        self._kinds = kinds or KindRegistry()

    @activity.defn(name="validate_change")
    @heartbeats
    async def validate_change(self, data: ValidateInput) -> ValidationReport:
        """VALIDATE alone: kept for changes started before it was assessed with the plan."""
        return await self.report(data)

    async def report(self, data: ValidateInput) -> ValidationReport:
        """Findings in the order found (assumptions, context, blast radius) and the tier."""
        label = data.request.target.label()
        active, incidents = await asyncio.to_thread(self._read_store, data.change_id, label)
        flags, unreadable = await gather_flags(self._sources)
        findings = kind_findings(data, self._kinds)
        request = data.request
        writes = request.change.parameters
        findings += check_assumptions(request.assumptions, data.observation, writes=writes)
        findings += direction_findings(request.assumptions, data.observation, writes=writes)
        findings += context_findings(
            data.request,
            policy=self._policy,
            now=datetime.now(UTC),
            observation_label=label,
            active_changes=active,
            open_incidents=incidents,
            flags=flags,
        )
        findings += [
            Finding(code="context-unavailable", severity="warn", message=reason)
            for reason in unreadable
        ]
        findings += blast_radius(data, self._policy)
        findings = apply_finding_actions(findings, self._policy)
        risk = risk_tier(
            data.request,
            policy=self._policy,
            unit_count=len(data.observation.units),
            findings=findings,
            declared=declared_class(data, self._kinds),
        )
        rollout = effective_rollout(data.request.rollout, risk)
        return ValidationReport(findings=findings, risk=risk, rollout=rollout)

    def _read_store(
        self, change_id: str, label: str
    ) -> tuple[list[ActiveChange], list[OpenIncident]]:
        # Only the changes context judges: on the target and the targets around it.
        topology = self._policy.topology
        around = {label, *dependencies_of(label, topology), *dependents_of(label, topology)}
        with self._store.session() as session:
            active = [
                ActiveChange(
                    change_id=row.change_id, target_label=row.target_label, agent_id=row.agent_id
                )
                for row in active_changes(session=session, target_labels=around)
                if row.change_id != change_id
            ]
            return active, read_open_incidents(session=session)
