"""Which kind of incident a change is, and how severe: documented, deterministic rules.

Only a change that wrote to its target and did not end DONE needs one (`needs_incident`):
one that ended ROLLED_BACK or ROLLBACK_FAILED. A change that expired, was rejected or was
blocked wrote nothing and opens none.

Category, first match wins:
1. ROLLBACK_FAILED                                          -> rollback-failure
2. halted by an abort or cancellation after applying         -> operator-abort
3. an apply failed                                          -> apply-error, or timeout when
                                                               the target did not answer
                                                               (`halt_error` TargetTimeout)
Otherwise health failed or erred, or a unit drifted during VERIFY, and:
4. the target moved after an approval, which was voided (finding `approval-voided`) and
   given again on the new state                             -> approval-voided
5. the approver was shown a stale or unverifiable assumption -> context-boundary
6. neither                                                  -> health-regression

Severity:
- SEV1: a rollback failed (units left changed, no verified way back).
- SEV2: units beyond the canary were touched before the failure was caught.
- SEV3: only the canary was touched (the guardrail worked as designed).
- SEV4: an operator abort that was reverted cleanly.
"""

from __future__ import annotations

from changegate.models import (
    ChangeStatus,
    HaltCause,
    IncidentCategory,
    IncidentSeverity,
    Outcome,
)

_CONTEXT_CODES = {
    "stale-assumption",
    "stale-written-key",
    "direction-reversed",
    "unverifiable-assumption",
}
_VOIDED = "approval-voided"


def needs_incident(status: ChangeStatus) -> bool:
    """True for a change that touched production and did not end DONE."""
    return status.outcome in (Outcome.ROLLED_BACK, Outcome.ROLLBACK_FAILED)


def incident_id_for(change_id: str) -> str:
    """The id of the incident an ended change opens: one per change, known in advance."""
    return f"inc-{change_id}"


def touched_units(status: ChangeStatus) -> list[str]:
    """Units the change wrote to (applied, reverted, or failed either way)."""
    return [u.unit_id for u in status.units if u.status != "pending"]


# Typed errors (the activity failure's type) that mean the target did not answer in time.
_TIMEOUTS = frozenset({"TargetTimeout"})


def category(status: ChangeStatus) -> IncidentCategory:
    """The incident's category by the rules in this module's docstring."""
    cause = status.halt_cause
    if status.outcome == Outcome.ROLLBACK_FAILED:
        return IncidentCategory.ROLLBACK_FAILURE
    if cause in (HaltCause.ABORTED, HaltCause.CANCELLED):
        return IncidentCategory.OPERATOR_ABORT
    if cause == HaltCause.APPLY_FAILED:
        timed_out = status.halt_error in _TIMEOUTS
        return IncidentCategory.TIMEOUT if timed_out else IncidentCategory.APPLY_ERROR
    codes = {f.code for f in status.findings}
    if _VOIDED in codes:
        return IncidentCategory.APPROVAL_VOIDED
    if codes & _CONTEXT_CODES:
        return IncidentCategory.CONTEXT_BOUNDARY
    return IncidentCategory.HEALTH_REGRESSION


def severity(status: ChangeStatus, kind: IncidentCategory) -> IncidentSeverity:
    """The incident's severity by the rules in this module's docstring."""
    if kind == IncidentCategory.ROLLBACK_FAILURE:
        return IncidentSeverity.SEV1
    if kind == IncidentCategory.OPERATOR_ABORT:
        return IncidentSeverity.SEV4
    beyond_canary = [u for u in status.units if u.status != "pending" and u.phase != "canary"]
    return IncidentSeverity.SEV2 if beyond_canary else IncidentSeverity.SEV3
