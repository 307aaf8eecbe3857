"""The `command` provider: observe, plan, read, apply and revert through a configured executable.

Selector: `command` (required; the name of a target the operator configured in
`CHANGEGATE_COMMAND_TARGETS`) and optionally `instances` (comma-separated unit ids). Every
method sends one JSON request to the executable (see `changegate.kinds.command` for the
contract); nothing of the request reaches an argv or a shell, only the executable's stdin.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

from pydantic import JsonValue

from changegate.errors import (
    ConfigurationError,
    InvalidTarget,
    ProviderError,
    TargetNotFound,
    UnsupportedOperation,
)
from changegate.kinds.command.runner import call
from changegate.kinds.command.schema import (
    CommandTarget,
    ObserveAnswer,
    PlanAnswer,
    ReadAnswer,
    WriteAnswer,
)
from changegate.kinds.http.provider import outside_keys, parameters
from changegate.models import (
    ChangePlan,
    ChangeRequest,
    Target,
    TargetObservation,
    UnitChange,
    UnitObservation,
)
from changegate.models.request import UNIT_FILTER
from changegate.providers.phasing import phase_name, split_phases
from changegate.providers.selectors import (
    LABEL_RULE,
    SELECTOR_RULE,
    check_keys,
    check_kind,
    dns_label,
    is_label,
    label_list,
    selected_unit,
    selected_units,
    selector_field,
)

KIND = "command"
COMMAND = "command"
_EXAMPLE = "{'command': 'tfvars'}"


class CommandProvider:
    """Reads and changes targets through the executables configured in settings."""

    kind = KIND

    def __init__(self, targets: Mapping[str, CommandTarget]) -> None:
        """Serve `targets`; their names must be DNS labels."""
        for name in targets:
            if not is_label(name):
                raise ConfigurationError(f"command target name {name!a} is not {LABEL_RULE}")
        self._targets = dict(targets)

    def command(self, name: str) -> CommandTarget:
        """The configured target called `name` (a resolved selector's)."""
        return self._targets[name]

    def resolve(self, target: Target) -> Target:
        """The canonical command target, or `InvalidTarget`."""
        check_kind(target, self.kind)
        check_keys(
            target.selector,
            kind=self.kind,
            required=(COMMAND,),
            optional=(UNIT_FILTER,),
            example=_EXAMPLE,
        )
        name = dns_label(
            target.selector[COMMAND],
            field=selector_field(COMMAND),
            noun="configured command target",
            example=next(iter(sorted(self._targets)), "tfvars"),
        )
        if name not in self._targets:
            known = ", ".join(sorted(self._targets)) or "none (CHANGEGATE_COMMAND_TARGETS is empty)"
            raise InvalidTarget(
                rule=SELECTOR_RULE,
                field=selector_field(COMMAND),
                reason=f"{selector_field(COMMAND)} {name!r} is not a configured command target; "
                f"configured: {known}",
                would_pass="one of the configured targets; an operator adds targets to "
                "CHANGEGATE_COMMAND_TARGETS",
            )
        selector = {COMMAND: name}
        if UNIT_FILTER in target.selector:
            selector[UNIT_FILTER] = label_list(
                target.selector[UNIT_FILTER],
                field=selector_field(UNIT_FILTER),
                noun="unit id",
                example="a,b",
            )
        return Target(kind=self.kind, selector=selector)

    async def aclose(self) -> None:
        """Nothing to release: each call is its own process."""

    async def observe(self, target: Target) -> TargetObservation:
        """The executable's `observe`: the selected units, their state and health."""
        target = self.resolve(target)
        name = target.selector[COMMAND]
        wanted = selected_units(target)
        units: JsonValue = None if wanted is None else [*sorted(wanted)]
        answer = await call(name, self.command(name), "observe", {"units": units}, ObserveAnswer)
        ids = [_answered_id(unit.id, name=name) for unit in answer.units]
        if len(set(ids)) != len(ids):
            raise ProviderError(f"command target {name!r} listed a unit twice in observe")
        if wanted is not None:
            missing = sorted(wanted - set(ids))
            if missing:
                raise TargetNotFound(
                    f"command target {name!r} has no unit(s) {', '.join(missing)}; observe "
                    "it without `instances` to list its units"
                )
        return TargetObservation(
            target_label=target.label(),
            observed_at=datetime.now(UTC),
            units=[
                UnitObservation(unit_id=unit.id, state=unit.state, healthy=unit.healthy)
                for unit in answer.units
                if wanted is None or unit.id in wanted
            ],
            facts=answer.facts,
        )

    async def plan(self, request: ChangeRequest, observation: TargetObservation) -> ChangePlan:
        """The executable's `plan` of `set_values`, phased canary first in its order."""
        target = self.resolve(request.target)
        if observation.target_label != target.label():
            raise UnsupportedOperation(
                f"the observation is of {observation.target_label}, not of {target.label()}; "
                f"observe {target.label()} and plan from that observation"
            )
        values = parameters(request.change.operation, request.change.parameters)
        if not observation.units:
            raise TargetNotFound(f"{target.label()} has no units to change")
        name = target.selector[COMMAND]
        outside_keys(values, self.command(name).keys, where=f"command target {name!r}")
        answer = await call(
            name,
            self.command(name),
            "plan",
            {
                "operation": request.change.operation,
                "parameters": values,
                "units": [{"id": u.unit_id, "state": u.state} for u in observation.units],
            },
            PlanAnswer,
        )
        observed = {u.unit_id for u in observation.units}
        planned = {unit.id: unit for unit in answer.units}
        strays = sorted(set(planned) - observed)
        if strays or len(planned) != len(answer.units):
            raise ProviderError(
                f"command target {name!r} planned units it was not asked about or planned one "
                f"twice ({', '.join(strays) or 'a repeated id'}); a plan covers observed units"
            )
        phases = split_phases(list(planned), request.rollout)
        return ChangePlan(
            phases=[
                [
                    UnitChange(
                        unit_id=unit_id,
                        phase=phase_name(index),
                        before=planned[unit_id].before,
                        after=planned[unit_id].after,
                    )
                    for unit_id in unit_ids
                ]
                for index, unit_ids in enumerate(phases)
            ],
            reversible=answer.reversible,
        )

    async def read_unit(self, target: Target, unit_id: str) -> dict[str, JsonValue]:
        """The executable's `read` of one unit."""
        target = self.resolve(target)
        name = target.selector[COMMAND]
        unit = _unit(target, unit_id)
        answer = await call(name, self.command(name), "read", {"unit": unit}, ReadAnswer)
        return answer.state

    async def apply(self, target: Target, unit: UnitChange, *, idempotency_key: str) -> None:
        """The executable's `apply`: bring the unit to `unit.after`."""
        await self._write("apply", target, unit, idempotency_key)

    async def revert(self, target: Target, unit: UnitChange, *, idempotency_key: str) -> None:
        """The executable's `revert`: bring the unit back to `unit.before`."""
        await self._write("revert", target, unit, idempotency_key)

    async def _write(
        self, which: Literal["apply", "revert"], target: Target, unit: UnitChange, key: str
    ) -> None:
        target = self.resolve(target)
        name = target.selector[COMMAND]
        unit_id = _unit(target, unit.unit_id)
        await call(
            name,
            self.command(name),
            which,
            {
                "unit": unit_id,
                "before": unit.before,
                "after": unit.after,
                "idempotency_key": key,
            },
            WriteAnswer,
        )


def _answered_id(unit: str, *, name: str) -> str:
    if not is_label(unit):
        raise ProviderError(
            f"command target {name!r} answered the unit id {unit[:80]!a}, which changegate "
            f"cannot use: a unit id is {LABEL_RULE}"
        )
    return unit


def _unit(canonical: Target, unit_id: str) -> str:
    return selected_unit(canonical, unit_id, noun="unit id", example="a")
