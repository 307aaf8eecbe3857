"""The fleet kind object: its schemas, operations, metrics, provider and health source."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from changegate.kinds.base import Metric, Operation
from changegate.kinds.fleet.provider import FleetProvider
from changegate.kinds.fleet.schema import FleetSelector, SetConfig

if TYPE_CHECKING:
    from changegate.health.sources import HealthSource
    from changegate.settings import Settings

_SELECTED = 'service="{{selector.service}}",instance=~"{{units}}"'


class FleetKind:
    """The demo fleet as a target kind."""

    name = "fleet"
    description = "The demo fleet's service instances, changed through its config API."
    selector = FleetSelector
    operations: Mapping[str, Operation] = {
        "set_config": Operation(
            name="set_config",
            description="Set config keys (version, pool_size, timeout_ms, log_level) on each "
            "selected instance; reverted by writing the old values back.",
            parameters=SetConfig,
            operation_class="config",
            # A new version is a release: at least medium risk, like any deploy.
            key_classes={"version": "deploy"},
        ),
    }
    metrics: Mapping[str, Metric] = {
        "error_rate": Metric(
            name="error_rate",
            description="Fraction of requests that failed over the instance's window (0-1).",
            query=f"max by (instance) (fleet_error_ratio{{{_SELECTED}}})",
        ),
        "latency_p99_ms": Metric(
            name="latency_p99_ms",
            description="99th percentile latency over the instance's window, in ms.",
            query=f"1000 * max by (instance) (fleet_latency_p99_seconds{{{_SELECTED}}})",
        ),
    }

    def provider(self, settings: Settings) -> FleetProvider:
        """The fleet's HTTP API at `settings.fleet_url`."""
        return FleetProvider(settings.fleet_url)

    def health_source(self, settings: Settings) -> HealthSource:
        """Prometheus when `settings.prometheus_url` is set, else the fleet's own `/metrics`."""
        from changegate.health import FleetMetricsSource, PrometheusSource

        if settings.prometheus_url:
            return PrometheusSource(settings.prometheus_url, max_age_seconds=30)
        return FleetMetricsSource(settings.fleet_url)


KIND = FleetKind()
"""The fleet kind, as its entry point names it."""
