"""The provider interface: how changegate reads and changes one kind of target."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import JsonValue

from changegate.models import ChangePlan, ChangeRequest, Target, TargetObservation, UnitChange


@runtime_checkable
class ReadOnlyProvider(Protocol):
    """The read-only half of a provider: all that reconnaissance and validation may use."""

    kind: str

    def resolve(self, target: Target) -> Target:
        """The target's canonical form, or `InvalidTarget`; pure, so the API can call it too.

        Unknown selector keys and values outside the kind's naming rules are refused, never
        repaired, so that every selector reaching the same units has the same `label()`.
        """
        ...

    async def observe(self, target: Target) -> TargetObservation:
        """Read the target's units and their current state, changing nothing."""
        ...

    async def plan(self, request: ChangeRequest, observation: TargetObservation) -> ChangePlan:
        """Turn the request into per-unit steps (before/after), grouped into phases."""
        ...

    async def read_unit(self, target: Target, unit_id: str) -> dict[str, JsonValue]:
        """Read one unit's current state."""
        ...

    async def aclose(self) -> None:
        """Release connections; called once when the worker stops."""
        ...


@runtime_checkable
class Provider(ReadOnlyProvider, Protocol):
    """A full provider; its mutating methods run only in rollout activities after approval."""

    async def apply(self, target: Target, unit: UnitChange, *, idempotency_key: str) -> None:
        """Bring the unit to `unit.after`; a repeated key must not change anything again."""
        ...

    async def revert(self, target: Target, unit: UnitChange, *, idempotency_key: str) -> None:
        """Bring the unit back to `unit.before`; a repeated key must not change it again."""
        ...


def matches(state: dict[str, JsonValue], expected: dict[str, JsonValue]) -> list[str]:
    """The keys of `expected` whose value in `state` differs (empty when it matches)."""
    return [key for key, value in expected.items() if state.get(key) != value]
