"""Analysis measurements: read a health source and classify what it says."""

from __future__ import annotations

from temporalio import activity

from changegate.activities.heartbeat import heartbeats
from changegate.errors import ChangegateError
from changegate.health import HealthSourceRegistry, PrometheusSource, classify
from changegate.models import MeasureInput, Measurement


class HealthActivities:
    """Takes one measurement of a set of units."""

    def __init__(self, sources: HealthSourceRegistry) -> None:
        """Measure with the source registered for each target kind."""
        self._sources = sources

    @activity.defn(name="measure_health")
    @heartbeats
    async def measure_health(self, data: MeasureInput) -> Measurement:
        """A classified measurement; a source that cannot be read gives an `error` one."""
        try:
            source = self._sources.get(data.target_kind)
            values = await source.measure(data.selector, data.unit_ids, data.checks)
            # An analysis template brings its own failure and success conditions.
            conditions = (
                source.conditions(data.selector, data.checks)
                if isinstance(source, PrometheusSource)
                else None
            )
        except ChangegateError as exc:
            return Measurement(phase="error", reason=str(exc))
        return classify(values, conditions)
