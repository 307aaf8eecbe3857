"""A dry run: what a change request would meet if it were submitted now, starting nothing.

It asks the admission gate for its verdict without reserving the target, reads the target
through its kind's read-only `observe`, and runs VALIDATE's own checks and risk tier on that
observation. No workflow starts and no change row is written, so a dry run never counts
against rate limits, loop detection or in-flight limits; the one thing it writes is an
audit line in the store's refusals, under the rule `dry_run`, saying who asked and what
they were told.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Literal

from pydantic import Field

from changegate.activities.validation import ValidationActivities, context_sources
from changegate.errors import ChangegateError
from changegate.kinds import KindRegistry
from changegate.models import (
    ChangeRequest,
    Finding,
    RiskAssessment,
    TargetObservation,
    ValidateInput,
)
from changegate.models.request import Contract, RolloutSpec
from changegate.policy import Admission
from changegate.providers import ProviderRegistry
from changegate.service.changes import ChangeService
from changegate.settings import Settings
from changegate.store import record_refusal

__all__ = ["DRY_RUN_RULE", "DryRunReport", "dry_run"]

DRY_RUN_RULE = "dry_run"
"""The rule under which a dry run's audit line is kept in the store's refusals."""

DRY_RUN_ID = "dry-run"
"""The change id VALIDATE's checks see: no active change has it, so none is left out."""

_UNOBSERVED = ("target.", "change.", "scope.")
"""Refusals that leave the target unread: its kind does not accept the request, or the
agent may not propose changes to it at all (a dry run is no way around its scope)."""


class DryRunReport(Contract):
    """What submitting the request would meet now; nothing was started or reserved."""

    dry_run: Literal[True] = True
    verdict: str = Field(description="One line: admitted or refused, VALIDATE's outcome, tier.")
    would_start: bool = Field(
        description="Admission would admit it and VALIDATE has no blocking finding."
    )
    admission: Admission = Field(
        description="Admitted, or the rule that refuses it, why, and what would pass."
    )
    risk: RiskAssessment | None = Field(
        default=None, description="The tier VALIDATE would give it and why; None if unobserved."
    )
    findings: list[Finding] = Field(
        default_factory=list, description="VALIDATE's findings on the live state, in order."
    )
    rollout: RolloutSpec | None = Field(
        default=None, description="The rollout it would run with, raised to its tier's minimums."
    )
    observation: TargetObservation | None = Field(
        default=None, description="The target as its kind's read-only observe saw it just now."
    )
    observation_error: str | None = Field(
        default=None, description="Why the target was not observed, when it was not."
    )
    request: ChangeRequest = Field(description="The request as judged: redacted, canonical.")


async def dry_run(
    changes: ChangeService,
    request: ChangeRequest,
    *,
    asked_by: str,
    settings: Settings,
    kinds: KindRegistry | None = None,
    providers: ProviderRegistry | None = None,
) -> DryRunReport:
    """Judge `request` as submission would and record one audit line naming `asked_by`.

    The target is read through `providers` (by default built from `settings` for this call
    and closed after it); `kinds` (by default every installed one) check the change.
    """
    kinds = kinds or KindRegistry()
    gate = await asyncio.to_thread(lambda: changes.gate)
    now = datetime.now(UTC)
    redacted, admission = await asyncio.to_thread(gate.judge, request, now=now)
    findings: list[Finding] = []
    risk: RiskAssessment | None = None
    rollout: RolloutSpec | None = None
    observation: TargetObservation | None = None
    unobserved: str | None = None
    if admission.rule is not None and admission.rule.startswith(_UNOBSERVED):
        unobserved = f"not observed: rule {admission.rule} refuses the request before that"
    else:
        observation, unobserved = await _observe(redacted, settings, kinds, providers)
    if observation is not None:
        checks = ValidationActivities(
            policy=gate.policy,
            store=gate.store,
            sources=context_sources(
                gate.policy, base=settings.policy_file.parent if settings.policy_file else None
            ),
            kinds=kinds,
        )
        report = await checks.report(
            ValidateInput(change_id=DRY_RUN_ID, request=redacted, observation=observation)
        )
        findings, risk, rollout = report.findings, report.risk, report.rollout
    blocked = [f.code for f in findings if f.severity == "block"]
    result = DryRunReport(
        verdict=_verdict(admission, blocked=blocked, risk=risk, observed=observation is not None),
        would_start=admission.admitted and observation is not None and not blocked,
        admission=admission,
        risk=risk,
        findings=findings,
        rollout=rollout,
        observation=observation,
        observation_error=unobserved,
        request=redacted,
    )
    await asyncio.to_thread(_audit, changes, result, asked_by=asked_by, at=now)
    return result


async def _observe(
    request: ChangeRequest,
    settings: Settings,
    kinds: KindRegistry,
    providers: ProviderRegistry | None,
) -> tuple[TargetObservation | None, str | None]:
    """The target's live state through its read-only provider, or why it could not be read."""
    own = providers is None
    registry = providers or kinds.providers(settings)
    try:
        observed = await registry.read_only(request.target.kind).observe(request.target)
        return observed, None
    except ChangegateError as exc:
        return None, f"could not observe {request.target.label()}: {exc}"
    finally:
        if own:
            await registry.aclose()


def _verdict(
    admission: Admission, *, blocked: list[str], risk: RiskAssessment | None, observed: bool
) -> str:
    said = (
        "admission would admit it"
        if admission.admitted
        else f"admission would refuse it by rule {admission.rule}"
    )
    if not observed:
        return f"{said}; the target was not observed, so VALIDATE was not run"
    validate = (
        f"VALIDATE would block it ({', '.join(blocked)})" if blocked else "VALIDATE would pass"
    )
    tier = f"; risk {risk.tier}" if risk is not None else ""
    return f"{said}; {validate}{tier}"


def _audit(changes: ChangeService, report: DryRunReport, *, asked_by: str, at: datetime) -> None:
    with changes.gate.store.session() as session:
        record_refusal(
            session=session,
            request=report.request,
            rule=DRY_RUN_RULE,
            reason=f"dry run asked by {asked_by}: {report.verdict}",
            would_pass=report.admission.would_pass,
            at=at,
        )
