"""The `command` kind's health source: the executable's `health` call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from changegate.errors import ChangegateError, HealthSourceError
from changegate.kinds.command.provider import COMMAND
from changegate.kinds.command.runner import call
from changegate.kinds.command.schema import CommandTarget, HealthAnswer
from changegate.models import HealthCheck, MetricValue


class CommandHealthSource:
    """Asks the target's executable for each unit's metrics."""

    kind = "command"

    def __init__(self, targets: Mapping[str, CommandTarget]) -> None:
        """Measure the units of `targets`."""
        self._targets = dict(targets)

    async def aclose(self) -> None:
        """Nothing to release: each call is its own process."""

    async def measure(
        self, selector: dict[str, str], unit_ids: Sequence[str], checks: Sequence[HealthCheck]
    ) -> list[MetricValue]:
        """One value per (unit, check); a pair the executable did not answer is None."""
        name = selector.get(COMMAND, "")
        target = self._targets.get(name)
        if target is None:
            raise HealthSourceError(f"no command target {name!a} is configured")
        metrics = sorted({check.metric for check in checks})
        try:
            answer = await call(
                name,
                target,
                "health",
                {"units": [*unit_ids], "metrics": [*metrics]},
                HealthAnswer,
            )
        except ChangegateError as exc:
            raise HealthSourceError(f"could not read health of {name!r}: {exc}") from exc
        got = {(v.unit, v.metric): v.value for v in answer.values}
        return [
            MetricValue(
                unit_id=unit,
                metric=check.metric,
                value=got.get((unit, check.metric)),
                max=check.max,
            )
            for unit in unit_ids
            for check in checks
        ]
