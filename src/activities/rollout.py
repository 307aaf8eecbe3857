"""The only activities that may change a target: apply, revert, and their verification.

Both writes are three-way: the unit is read first, and written only when it holds the value
the step starts from. A unit already at the step's target is left alone (a retried step,
an apply that never landed, a revert someone already did); a unit at neither value was
changed by someone else and is never overwritten: the step reports a conflict.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pydantic import JsonValue
from temporalio import activity
from temporalio.exceptions import ApplicationError

from changegate.activities.failures import as_activity_failure
from changegate.activities.heartbeat import heartbeats
from changegate.models import (
    Target,
    UnitChange,
    UnitResult,
    UnitStepInput,
    Verification,
    VerifyAllInput,
    VerifyInput,
)
from changegate.providers import ProviderRegistry, matches

Write = Callable[[Target, UnitChange], Awaitable[None]]

# Reads of one verification in flight at once: quick for a large plan, gentle on the target.
_VERIFY_AT_ONCE = 8


class RolloutActivities:
    """Apply and revert single units, idempotently, and check where they are."""

    def __init__(self, providers: ProviderRegistry) -> None:
        """Use `providers` in full: these activities run only after approval."""
        self._providers = providers

    @activity.defn(name="apply_unit")
    @heartbeats
    async def apply_unit(self, data: UnitStepInput) -> UnitResult:
        """Bring one unit from its planned `before` to `after` (at most once)."""
        _require_approval(data)
        provider = self._providers.get(data.target.kind)
        key = data.idempotency_key("apply")

        async def write(target: Target, unit: UnitChange) -> None:
            await provider.apply(target, unit, idempotency_key=key)

        return await self._step(data, start=data.unit.before, goal=data.unit.after, write=write)

    @activity.defn(name="revert_unit")
    @heartbeats
    async def revert_unit(self, data: UnitStepInput) -> UnitResult:
        """Bring one unit from `after` back to `before` (at most once); never overwrite
        a value someone else set."""
        _require_approval(data)
        provider = self._providers.get(data.target.kind)
        key = data.idempotency_key("revert")

        async def write(target: Target, unit: UnitChange) -> None:
            await provider.revert(target, unit, idempotency_key=key)

        return await self._step(data, start=data.unit.after, goal=data.unit.before, write=write)

    @activity.defn(name="verify_unit")
    @heartbeats
    async def verify_unit(self, data: VerifyInput) -> UnitResult:
        """Re-read one unit and say whether it is in the expected state."""
        with as_activity_failure():
            provider = self._providers.read_only(data.target.kind)
            state = await provider.read_unit(data.target, data.unit_id)
        return _result(data.unit_id, state, data.expected)

    @activity.defn(name="verify_units")
    @heartbeats
    async def verify_units(self, data: VerifyAllInput) -> Verification:
        """Re-read every unit (a few at a time) and say which are in the expected state."""
        provider = self._providers.read_only(data.target.kind)
        slots = asyncio.Semaphore(_VERIFY_AT_ONCE)

        async def read(unit_id: str, expected: dict[str, JsonValue]) -> UnitResult:
            async with slots:
                with as_activity_failure():
                    state = await provider.read_unit(data.target, unit_id)
            return _result(unit_id, state, expected)

        results = await asyncio.gather(*(read(u, e) for u, e in data.expected.items()))
        return Verification(results=list(results))

    async def _step(
        self,
        data: UnitStepInput,
        *,
        start: dict[str, JsonValue],
        goal: dict[str, JsonValue],
        write: Write,
    ) -> UnitResult:
        unit_id = data.unit.unit_id
        with as_activity_failure():
            provider = self._providers.get(data.target.kind)
            state = await provider.read_unit(data.target, unit_id)
            if not matches(state, goal):
                return UnitResult(
                    unit_id=unit_id,
                    ok=True,
                    state=state,
                    skipped=True,
                    detail=f"already at {_show(goal)}; nothing written",
                )
            if matches(state, start):
                return UnitResult(
                    unit_id=unit_id,
                    ok=False,
                    state=state,
                    conflict=True,
                    detail=f"someone else changed it: expected {_show(start)}, found "
                    f"{_show({k: state.get(k) for k in start})}, would write {_show(goal)}; "
                    "left as found",
                )
            await write(data.target, data.unit)
            state = await provider.read_unit(data.target, unit_id)
        return _result(unit_id, state, goal)


def _show(values: dict[str, JsonValue]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in values.items())


def _require_approval(data: UnitStepInput) -> None:
    # The workflow schedules these only after approval; this guards against any other caller.
    if not data.approval.approved_by:
        raise ApplicationError(
            "refusing to change a target without an approval",
            type="NotApproved",
            non_retryable=True,
        )


def _result(
    unit_id: str, state: dict[str, JsonValue], expected: dict[str, JsonValue]
) -> UnitResult:
    wrong = matches(state, expected)
    detail = (
        ""
        if not wrong
        else "differs on "
        + ", ".join(f"{k}: {state.get(k)!r} (expected {expected[k]!r})" for k in wrong)
    )
    return UnitResult(unit_id=unit_id, ok=not wrong, state=state, detail=detail)
