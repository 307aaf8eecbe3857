"""Health sources and the pure analysis that turns their readings into verdicts."""

from changegate.health.analysis import classify, evaluate
from changegate.health.prometheus import (
    FLEET_QUERIES,
    FLEET_TIMESTAMP_QUERIES,
    PrometheusSource,
)
from changegate.health.sources import FleetMetricsSource, HealthSource, HealthSourceRegistry

__all__ = [
    "FLEET_QUERIES",
    "FLEET_TIMESTAMP_QUERIES",
    "FleetMetricsSource",
    "HealthSource",
    "HealthSourceRegistry",
    "PrometheusSource",
    "classify",
    "evaluate",
]
