"""Health sources and the pure analysis that turns their readings into verdicts."""

from changegate.health.analysis import classify, evaluate
from changegate.health.sources import FleetMetricsSource, HealthSource, HealthSourceRegistry

__all__ = ["FleetMetricsSource", "HealthSource", "HealthSourceRegistry", "classify", "evaluate"]
