"""Health measurements and the verdict an analysis reaches from them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from changegate.models.request import Contract, HealthCheck

Phase = Literal["successful", "failed", "inconclusive", "error"]


class MetricValue(Contract):
    """One metric of one unit against its threshold; `value` is None when data is missing."""

    unit_id: str
    metric: str
    value: float | None
    max: float


class Measurement(Contract):
    """One analysis run over a set of units, classified by `classify`."""

    phase: Phase
    values: list[MetricValue] = Field(default_factory=list)
    reason: str


class AnalysisLimits(Contract):
    """How many measurements an analysis takes and how many bad ones it tolerates."""

    count: int
    failure_limit: int
    inconclusive_limit: int
    consecutive_error_limit: int = 3


class Verdict(Contract):
    """The outcome of an analysis: the phase and why."""

    phase: Phase
    reason: str
    measurements: list[Measurement] = Field(default_factory=list)


class MeasureInput(Contract):
    """Input of the `measure_health` activity."""

    target_kind: str
    selector: dict[str, str]
    unit_ids: list[str]
    checks: list[HealthCheck]
