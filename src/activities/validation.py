"""VALIDATE: compare the agent's beliefs and context with the live state."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from temporalio import activity

from changegate.models import Finding, PlanInput, ValidationReport
from changegate.policy import check_assumptions

Check = Callable[[PlanInput], list[Finding]]


def assumption_check(data: PlanInput) -> list[Finding]:
    """Every assumption of the agent that the observation contradicts."""
    return check_assumptions(data.request.assumptions, data.observation)


DEFAULT_CHECKS: tuple[Check, ...] = (assumption_check,)


class ValidationActivities:
    """Runs every configured check; policy-driven checks plug in as more `Check`s."""

    def __init__(self, checks: Sequence[Check] = DEFAULT_CHECKS) -> None:
        """Run `checks` in order; their findings keep that order."""
        self._checks = tuple(checks)

    @activity.defn(name="validate_change")
    async def validate_change(self, data: PlanInput) -> ValidationReport:
        """The findings of every check, in order."""
        findings = [finding for check in self._checks for finding in check(data)]
        return ValidationReport(findings=findings)
