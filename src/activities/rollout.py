"""The only activities that may change a target: apply, revert, and their verification."""

from __future__ import annotations

from pydantic import JsonValue
from temporalio import activity
from temporalio.exceptions import ApplicationError

from changegate.activities.failures import as_activity_failure
from changegate.models import UnitResult, UnitStepInput, VerifyInput
from changegate.providers import ProviderRegistry, matches


class RolloutActivities:
    """Apply and revert single units, idempotently, and check where they are."""

    def __init__(self, providers: ProviderRegistry) -> None:
        """Use `providers` in full: these activities run only after approval."""
        self._providers = providers

    @activity.defn(name="apply_unit")
    async def apply_unit(self, data: UnitStepInput) -> UnitResult:
        """Bring one unit to its planned state (at most once per change and unit)."""
        _require_approval(data)
        with as_activity_failure():
            provider = self._providers.get(data.target.kind)
            await provider.apply(
                data.target, data.unit, idempotency_key=data.idempotency_key("apply")
            )
            state = await provider.read_unit(data.target, data.unit.unit_id)
        return _result(data.unit.unit_id, state, data.unit.after)

    @activity.defn(name="revert_unit")
    async def revert_unit(self, data: UnitStepInput) -> UnitResult:
        """Bring one unit back to its state before the change (at most once)."""
        _require_approval(data)
        with as_activity_failure():
            provider = self._providers.get(data.target.kind)
            await provider.revert(
                data.target, data.unit, idempotency_key=data.idempotency_key("revert")
            )
            state = await provider.read_unit(data.target, data.unit.unit_id)
        return _result(data.unit.unit_id, state, data.unit.before)

    @activity.defn(name="verify_unit")
    async def verify_unit(self, data: VerifyInput) -> UnitResult:
        """Re-read one unit and say whether it is in the expected state."""
        with as_activity_failure():
            provider = self._providers.read_only(data.target.kind)
            state = await provider.read_unit(data.target, data.unit_id)
        return _result(data.unit_id, state, data.expected)


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
