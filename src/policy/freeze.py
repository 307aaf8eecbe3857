"""The incident freeze: which open incidents hold a change on a target, by severity.

One rule, read by admission (`incident_freeze`) and by VALIDATE (`open-incident`):

| incident                         | freezes                            | until               |
|----------------------------------|------------------------------------|---------------------|
| SEV1, SEV2                       | its target and every dependent     | it is closed        |
| SEV3 or SEV4, restored           | its target only                    | `opened_at` + the   |
|                                  |                                    | policy's cooling-off|
| SEV3 or SEV4, not restored       | as SEV2                            | it is closed        |
| severity unknown (labels only)   | as SEV2                            | it is closed        |

A dependent is every target that depends on the incident's target, directly or through
others, in `policy.topology`. A restored SEV3 was caught at the canary and reverted: the
guardrail worked, so only its own target waits, and only long enough for the health signal
to settle (`incident_cooling_off_minutes`, default 15). SEV4 is an operator abort that was
reverted cleanly (`changegate.incidents.classify`); nothing failed on its own, so it waits
like a contained SEV3. A SEV3 or SEV4 that was not restored cannot be produced today (a
failed rollback is SEV1); it is frozen as SEV2 should one appear. The freeze ends early
when the incident is closed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from changegate.models import IncidentSeverity
from changegate.policy.model import Policy
from changegate.policy.state import OpenIncident
from changegate.policy.targets import dependencies_of
from changegate.policy.windows import format_utc

_CONTAINABLE = frozenset({IncidentSeverity.SEV3, IncidentSeverity.SEV4})


@dataclass(frozen=True)
class Freeze:
    """An open incident that holds changes on `label`: on `where`, until closed or `until`."""

    label: str
    where: str
    incident_id: str | None
    severity: IncidentSeverity | None
    until: datetime | None

    def describe(self) -> str:
        """`open incident inc-1 (SEV2) on payments, a dependency of checkout`."""
        named = f" {self.incident_id}" if self.incident_id else ""
        sev = f" ({self.severity.value})" if self.severity else ""
        on = (
            self.where
            if self.where == self.label
            else f"{self.where}, a dependency of {self.label}"
        )
        return f"open incident{named}{sev} on {on}"

    def lasts(self) -> str:
        """How long the freeze holds, by the rule in this module's docstring."""
        if self.until is None:
            sev = "an incident of unknown severity" if self.severity is None else self.severity
            return f"{sev} freezes its target and its dependents until it is closed"
        return (
            f"a contained, restored {self.severity} freezes only its target; "
            f"cooling off until {format_utc(self.until)}"
        )

    def closing(self) -> str:
        """The command that ends the freeze early, when the incident is named."""
        return f" (`changegate incident close {self.incident_id}`)" if self.incident_id else ""


def incident_freezes(
    label: str,
    *,
    policy: Policy,
    now: datetime,
    incidents: Sequence[OpenIncident] = (),
    labels_only: Iterable[str] = (),
    ids: Mapping[str, str] | None = None,
) -> list[Freeze]:
    """Freezes on `label` now: longest first, those until closed before those with an end.

    `labels_only` lists targets with an open incident of unknown severity (`ids` names
    them): each is frozen as SEV2.
    """
    upstream = set(dependencies_of(label, policy.topology))
    cooling = timedelta(minutes=policy.incident_cooling_off_minutes)
    found: list[Freeze] = []
    for incident in incidents:
        where = incident.target_label
        until: datetime | None = None
        if incident.restored and incident.severity in _CONTAINABLE:
            until = incident.opened_at + cooling
            if where != label or now >= until:
                continue
        elif where != label and where not in upstream:
            continue
        found.append(Freeze(label, where, incident.incident_id, incident.severity, until))
    known = {i.target_label for i in incidents}
    for where in sorted(set(labels_only) - known):
        if where == label or where in upstream:
            incident_id = (ids or {}).get(where)
            found.append(Freeze(label, where, incident_id, None, None))
    return sorted(found, key=_longest_first)


def _longest_first(freeze: Freeze) -> tuple[int, float, bool, str]:
    end = -freeze.until.timestamp() if freeze.until else 0.0
    return (freeze.until is not None, end, freeze.where != freeze.label, freeze.where)
