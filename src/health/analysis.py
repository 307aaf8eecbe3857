"""Pure health analysis: classify one measurement, evaluate a run of them.

Missing data is never success: a measurement with any missing value is Inconclusive, and an
analysis with no Successful measurement cannot be Successful.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from changegate.health.templates import Conditions
from changegate.models import AnalysisLimits, Measurement, MetricValue, Verdict


def classify(
    values: Sequence[MetricValue], conditions: Mapping[str, Conditions] | None = None
) -> Measurement:
    """Failed if any value breaks its threshold, Inconclusive if any is missing, else OK.

    A value breaks its threshold when it is above its `max` or meets its metric's `failure`
    condition from `conditions` (an analysis template's); a value that breaks nothing but
    misses its metric's `success` condition is inconclusive.
    """
    if not values:
        return Measurement(phase="inconclusive", values=[], reason="no metric values returned")
    conditions = conditions or {}
    breaches: list[str] = []
    unproven: list[str] = []
    for v in values:
        if v.value is None:
            continue
        judged = conditions.get(v.metric, Conditions())
        failure, success = judged.failure, judged.success
        if v.value > v.max:
            breaches.append(f"{v.unit_id} {v.metric}={v.value:g} > {v.max:g}")
        elif failure is not None and failure.holds(v.value):
            breaches.append(f"{v.unit_id} {v.metric}={v.value:g} {failure}")
        elif success is not None and not success.holds(v.value):
            unproven.append(f"{v.unit_id} {v.metric}={v.value:g} not {success}")
    if breaches:
        return Measurement(phase="failed", values=list(values), reason=", ".join(breaches))
    missing = [v for v in values if v.value is None]
    if missing or unproven:
        names = ", ".join(f"{v.unit_id} {v.metric}" for v in missing)
        reasons = ([f"no data: {names}"] if missing else []) + unproven
        return Measurement(phase="inconclusive", values=list(values), reason="; ".join(reasons))
    return Measurement(phase="successful", values=list(values), reason="all within thresholds")


def evaluate(measurements: Sequence[Measurement], limits: AnalysisLimits) -> Verdict | None:
    """The verdict so far, or None while more measurements are needed.

    Failed once failures exceed `failure_limit`; Error after `consecutive_error_limit`
    errors in a row; Inconclusive once inconclusive measurements exceed
    `inconclusive_limit`. After `count` measurements that were taken (an `error` is a read
    that failed: it is measured again, so one miss never decides), Successful if at least
    one measurement was, otherwise Inconclusive.
    """
    failed = [m for m in measurements if m.phase == "failed"]
    inconclusive = [m for m in measurements if m.phase == "inconclusive"]
    if len(failed) > limits.failure_limit:
        return Verdict(phase="failed", reason=failed[-1].reason, measurements=list(measurements))
    streak = 0
    for m in measurements:
        streak = streak + 1 if m.phase == "error" else 0
    if streak >= limits.consecutive_error_limit:
        return Verdict(
            phase="error",
            reason=f"{streak} health source errors in a row: {measurements[-1].reason}",
            measurements=list(measurements),
        )
    if len(inconclusive) > limits.inconclusive_limit:
        return Verdict(
            phase="inconclusive", reason=inconclusive[-1].reason, measurements=list(measurements)
        )
    if sum(1 for m in measurements if m.phase != "error") < limits.count:
        return None
    if not any(m.phase == "successful" for m in measurements):
        return Verdict(
            phase="inconclusive",
            reason="no successful measurement: missing data is never success",
            measurements=list(measurements),
        )
    return Verdict(
        phase="successful",
        reason=f"{len(measurements)} measurements, {len(failed)} failed, "
        f"{len(inconclusive)} inconclusive",
        measurements=list(measurements),
    )
