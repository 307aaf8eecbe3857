"""Drift: whether the units an approval was given on still hold what the plan read."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import JsonValue

from changegate.models import ChangePlan, TargetObservation


@dataclass(frozen=True)
class Drift:
    """One value that moved since the plan read it (`unit_id` `*` for the unit count)."""

    unit_id: str
    key: str
    planned: JsonValue
    now: JsonValue

    def __str__(self) -> str:
        return f"{self.unit_id} {self.key}: {self.planned!r} -> {self.now!r}"


def drift(plan: ChangePlan, now: TargetObservation) -> list[Drift]:
    """Every planned `before` value that differs in `now`, and a changed unit count."""
    found = []
    for unit in plan.units():
        observed = now.unit(unit.unit_id)
        for key, before in unit.before.items():
            value = None if observed is None else observed.state.get(key)
            if value != before:
                found.append(Drift(unit.unit_id, key, before, value))
    if len(now.units) != len(plan.units()):
        found.append(Drift("*", "unit_count", len(plan.units()), len(now.units)))
    return found
