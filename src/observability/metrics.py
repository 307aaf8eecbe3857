"""The front door's Prometheus metrics: admission refusals, breaker trips, request latency.

They live in one registry of their own (with the process collectors), which the API serves
at `/metrics`. Labels are bounded values only: a rule name, a route template, a method, a
status code, and the agent id, which policy bounds. Never a selector, a parameter or any
other text an agent wrote. The workflow's metrics are recorded elsewhere
(`changegate.workflows.metrics`) and exported by the worker's Temporal runtime, and so is
a breaker trip counted inside an activity.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from temporalio import activity

__all__ = [
    "CONTENT_TYPE",
    "admission_refused",
    "breaker_tripped",
    "exposition",
    "registry",
    "request_served",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The Prometheus text format's media type."""

registry = CollectorRegistry()
"""Every front-door metric, and the process's CPU, memory and file descriptors."""
ProcessCollector(registry=registry)
PlatformCollector(registry=registry)

_REFUSALS = Counter(
    "changegate_admission_refusals",
    "Submissions admission refused, by the rule that refused them.",
    ["rule"],
    registry=registry,
)
BREAKER_TRIPS = "changegate_breaker_trips"
_BREAKER_HELP = "Times a circuit breaker tripped, by agent and by what tripped it."
_BREAKER_TRIPS = Counter(
    BREAKER_TRIPS,
    _BREAKER_HELP,
    ["agent", "trigger"],
    registry=registry,
)
_REQUESTS = Histogram(
    "changegate_api_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status.",
    ["method", "route", "status"],
    registry=registry,
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def admission_refused(rule: str) -> None:
    """Count one submission refused by `rule`."""
    _REFUSALS.labels(rule=rule).inc()


def breaker_tripped(*, agent: str, trigger: str) -> None:
    """Count one trip of `agent`'s breaker; `trigger` names the breaker's rule, never free text.

    In the API it counts toward `/metrics`; inside an activity (a trip judged when a worker
    records an outcome) toward the worker's runtime, which serves the same series name.
    """
    if activity.in_activity():
        activity.metric_meter().create_counter(BREAKER_TRIPS, _BREAKER_HELP).add(
            1, {"agent": agent, "trigger": trigger}
        )
        return
    _BREAKER_TRIPS.labels(agent=agent, trigger=trigger).inc()


def request_served(*, method: str, route: str, status: int, seconds: float) -> None:
    """Observe one answered request; `route` is the template (`/api/v1/changes/{change_id}`)."""
    _REQUESTS.labels(
        method=method if method in _METHODS else "other", route=route, status=str(status)
    ).observe(seconds)


def exposition() -> bytes:
    """The registry in the Prometheus text format."""
    return generate_latest(registry)
