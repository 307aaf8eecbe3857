"""Health sources and the pure analysis that turns their readings into verdicts.

The sources (HTTP clients) load on first use, so the workflow can import the pure
`evaluate` without pulling httpx into its sandbox.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from changegate.health.analysis import classify, evaluate
from changegate.health.templates import (
    AnalysisTemplate,
    Condition,
    Conditions,
    TemplateError,
    parse_condition,
    render,
)

if TYPE_CHECKING:
    from changegate.health.prometheus import (
        FLEET_QUERIES,
        FLEET_TIMESTAMP_QUERIES,
        PrometheusSource,
        TemplateLookup,
    )
    from changegate.health.sources import FleetMetricsSource, HealthSource, HealthSourceRegistry

_LAZY = {
    "FLEET_QUERIES": "changegate.health.prometheus",
    "FLEET_TIMESTAMP_QUERIES": "changegate.health.prometheus",
    "PrometheusSource": "changegate.health.prometheus",
    "TemplateLookup": "changegate.health.prometheus",
    "FleetMetricsSource": "changegate.health.sources",
    "HealthSource": "changegate.health.sources",
    "HealthSourceRegistry": "changegate.health.sources",
}

__all__ = [
    "FLEET_QUERIES",
    "FLEET_TIMESTAMP_QUERIES",
    "AnalysisTemplate",
    "Condition",
    "Conditions",
    "FleetMetricsSource",
    "HealthSource",
    "HealthSourceRegistry",
    "PrometheusSource",
    "TemplateError",
    "TemplateLookup",
    "classify",
    "evaluate",
    "parse_condition",
    "render",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'changegate.health' has no attribute {name!r}")
