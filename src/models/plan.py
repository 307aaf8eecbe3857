"""The rollout plan: which units change, in which order, from what to what."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, JsonValue

from changegate.models.request import Contract


class UnitChange(Contract):
    """One unit's step in the plan: its state before and the state it should reach."""

    unit_id: str
    phase: str = Field(description="`canary` or `wave-N`.")
    before: dict[str, JsonValue]
    after: dict[str, JsonValue]


class ChangePlan(Contract):
    """Units grouped into phases; the first phase is the canary."""

    phases: list[list[UnitChange]]
    reversible: bool = True

    def units(self) -> list[UnitChange]:
        """Every unit change in apply order."""
        return [u for phase in self.phases for u in phase]

    def unit(self, unit_id: str) -> UnitChange:
        """The planned change of one unit."""
        return next(u for u in self.units() if u.unit_id == unit_id)


UnitStatus = Literal[
    "pending",
    "applied",
    "verified",
    "reverted",
    "revert_skipped",
    "conflict",
    "revert_failed",
    "apply_failed",
]


class UnitState(Contract):
    """Where one unit is in the change, as the status query reports it."""

    unit_id: str
    phase: str
    status: UnitStatus = "pending"
    detail: str | None = None
