"""The pure health analysis: classification of one measurement, verdicts over a run."""

from __future__ import annotations

from changegate.health import classify, evaluate
from changegate.models import AnalysisLimits, Measurement, MetricValue

LIMITS = AnalysisLimits(count=3, failure_limit=1, inconclusive_limit=1)


def m(phase: str) -> Measurement:
    return Measurement(phase=phase, reason=phase)  # type: ignore[arg-type]


def value(v: float | None, *, max: float = 0.05) -> MetricValue:
    return MetricValue(unit_id="u-0", metric="error_rate", value=v, max=max)


def test_classify_breach_beats_missing_data() -> None:
    assert classify([value(0.01)]).phase == "successful"
    assert classify([value(None)]).phase == "inconclusive"
    assert classify([value(0.2), value(None)]).phase == "failed"
    assert "u-0 error_rate=0.2 > 0.05" in classify([value(0.2)]).reason
    assert classify([]).phase == "inconclusive"


def test_threshold_is_inclusive() -> None:
    assert classify([value(0.05)]).phase == "successful"


def test_needs_count_measurements_before_success() -> None:
    assert evaluate([m("successful")], LIMITS) is None
    assert evaluate([m("successful")] * 2, LIMITS) is None
    verdict = evaluate([m("successful")] * 3, LIMITS)
    assert verdict is not None and verdict.phase == "successful"


def test_failures_up_to_the_limit_are_tolerated_then_fail_early() -> None:
    assert evaluate([m("failed"), m("successful")], LIMITS) is None
    verdict = evaluate([m("failed"), m("failed")], LIMITS)
    assert verdict is not None and verdict.phase == "failed"


def test_inconclusive_over_the_limit_is_inconclusive() -> None:
    verdict = evaluate([m("inconclusive"), m("inconclusive")], LIMITS)
    assert verdict is not None and verdict.phase == "inconclusive"


def test_missing_data_is_never_success() -> None:
    limits = AnalysisLimits(count=1, failure_limit=0, inconclusive_limit=1)
    verdict = evaluate([m("inconclusive")], limits)
    assert verdict is not None and verdict.phase == "inconclusive"


def test_consecutive_errors_are_an_error_but_interrupted_runs_are_not() -> None:
    limits = AnalysisLimits(count=5, failure_limit=0, inconclusive_limit=0)
    verdict = evaluate([m("error")] * 3, limits)
    assert verdict is not None and verdict.phase == "error"
    assert evaluate([m("error"), m("error"), m("successful"), m("error")], limits) is None
