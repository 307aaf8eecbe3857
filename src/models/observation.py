"""What reconnaissance saw, and what validation concluded from it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, JsonValue

from changegate.models.request import Contract, RolloutSpec
from changegate.models.verdicts import RiskAssessment


class UnitObservation(Contract):
    """One unit of a target (an instance, a replica, a key) as it is right now."""

    unit_id: str
    state: dict[str, JsonValue] = Field(description="The unit's current configuration.")
    healthy: bool | None = None


class TargetObservation(Contract):
    """A read-only snapshot of a target taken by a provider's `observe`."""

    target_label: str
    observed_at: datetime
    units: list[UnitObservation]
    facts: dict[str, JsonValue] = Field(default_factory=dict)

    def paths(self) -> dict[str, JsonValue]:
        """Flatten to observation paths: `unit_count`, `units.<id>.<key>` and the facts."""
        flat: dict[str, JsonValue] = {"unit_count": len(self.units)}
        for unit in self.units:
            for key, value in unit.state.items():
                flat[f"units.{unit.unit_id}.{key}"] = value
        flat.update(self.facts)
        return flat

    def unit(self, unit_id: str) -> UnitObservation | None:
        """The unit with this id, if the target has it."""
        return next((u for u in self.units if u.unit_id == unit_id), None)


Severity = Literal["info", "warn", "block"]


class Finding(Contract):
    """Something validation noticed; `block` stops the change, `warn` is shown first."""

    code: str
    severity: Severity
    message: str
    path: str | None = None
    expected: JsonValue = None
    actual: JsonValue = None


class ValidationReport(Contract):
    """Every finding of VALIDATE, in order, and the risk tier policy gives the change."""

    findings: list[Finding] = Field(default_factory=list)
    risk: RiskAssessment | None = None
    rollout: RolloutSpec | None = None
    """The rollout the change runs with: the request's, raised to what its risk tier demands
    (computed once here; the summary shows it and the stage machine follows it)."""

    @property
    def blocked(self) -> bool:
        """True when any finding forbids the change."""
        return any(f.severity == "block" for f in self.findings)
