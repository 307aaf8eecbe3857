"""Health gates: after each bake, measure until the analysis has a verdict."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from changegate.health.analysis import evaluate
    from changegate.models import (
        AnalysisLimits,
        AnalysisRecord,
        HaltCause,
        HealthCheck,
        Measurement,
        Outcome,
        RolloutSpec,
    )
    from changegate.workflows.controls import Controls, Halt
    from changegate.workflows.ledger import Ledger
    from changegate.workflows.steps import Steps, failure_message


class HealthGate:
    """Runs a gate's analysis: successful goes on, inconclusive holds, the rest rolls back."""

    def __init__(
        self, ledger: Ledger, steps: Steps, controls: Controls, checks: list[HealthCheck]
    ) -> None:
        """Measure `checks` through `steps`; hold and stop through `controls`."""
        self._ledger = ledger
        self._steps = steps
        self._controls = controls
        self._checks = checks

    async def run(self, name: str, units: list[str], rollout: RolloutSpec) -> None:
        """Analyse `units` after phase `name`; `Halt` when health failed or errored."""
        limits = AnalysisLimits(
            count=rollout.analysis_count,
            failure_limit=rollout.failure_limit,
            inconclusive_limit=rollout.inconclusive_limit,
        )
        measurements: list[Measurement] = []
        while True:
            await self._controls.bake(
                rollout.analysis_interval_seconds, f"{name} analysis interval"
            )
            measurements.append(await self._measure(units, name, len(measurements), limits))
            verdict = evaluate(measurements, limits)
            if verdict is None:
                continue
            self._ledger.status.analyses.append(AnalysisRecord(gate=name, verdict=verdict))
            self._ledger.event("analysis", f"{name}: {verdict.phase}: {verdict.reason}")
            self._ledger.metrics.verdict(self._ledger.status.stage, verdict.phase)
            if verdict.phase == "successful":
                return
            if verdict.phase == "inconclusive":
                self._controls.hold_for_human(
                    f"{name} analysis inconclusive: held for a human; "
                    "resume to continue, abort to roll back"
                )
                await self._controls.checkpoint(f"{name} inconclusive analysis")
                return
            failed = verdict.phase == "failed"
            raise Halt(
                Outcome.ROLLED_BACK,
                HaltCause.HEALTH_FAILED if failed else HaltCause.HEALTH_ERROR,
                f"{name} health {verdict.phase}: {verdict.reason}",
            )

    async def _measure(
        self, units: list[str], name: str, done: int, limits: AnalysisLimits
    ) -> Measurement:
        label = f"{name} analysis {done + 1}/{limits.count}"
        try:
            measurement = await self._steps.measure(units, self._checks, label)
        except ActivityError as exc:
            # A measurement that could not be taken is an error, which the analysis limits
            # judge; it is never by itself a reason to stop.
            measurement = Measurement(phase="error", reason=failure_message(exc))
        self._ledger.status.measurement = measurement
        self._ledger.event("measurement", f"{name}: {measurement.phase}: {measurement.reason}")
        return measurement
