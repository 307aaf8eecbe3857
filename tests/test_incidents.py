"""Incident classification: which changes open one, its category and its severity.

Each case is a `ChangeStatus` as the workflow ends it; every category the taxonomy names is
produced by at least one, and the README names each of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from changegate.admission.breach import breach_incident
from changegate.errors import TargetUnavailable
from changegate.incidents import build_incident, category, needs_incident, severity
from changegate.kinds.fleet import FleetProvider
from changegate.models import (
    ChangeStatus,
    Finding,
    HaltCause,
    IncidentCategory,
    IncidentSeverity,
    Outcome,
    Stage,
    Target,
    TimelineEvent,
    UnitChange,
    UnitState,
)
from changegate.policy.breakers import Trip
from tests.support import make_request

AT = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
README = Path(__file__).parent.parent / "README.md"

STALE = Finding(
    code="stale-assumption",
    severity="warn",
    message="units.*.pool_size is 30, not 20",
    path="units.*.pool_size",
    expected=20,
    actual=30,
)
UNVERIFIABLE = Finding(code="unverifiable-assumption", severity="warn", message="no such path")
VOIDED = Finding(
    code="approval-voided",
    severity="warn",
    message="the target changed after approval (checkout-1 pool_size: 20 -> 30); "
    "the approval of alice was voided and the change needs a new decision",
)
FLAG = Finding(code="flag", severity="warn", message="flag checkout.canary is on")


def units(*statuses: tuple[str, str, str]) -> list[UnitState]:
    return [
        UnitState.model_validate({"unit_id": unit, "phase": phase, "status": status})
        for unit, phase, status in statuses
    ]


CANARY_ONLY = units(
    ("checkout-0", "canary", "reverted"),
    ("checkout-1", "wave-1", "pending"),
    ("checkout-2", "wave-2", "pending"),
)
INTO_WAVES = units(
    ("checkout-0", "canary", "reverted"),
    ("checkout-1", "wave-1", "reverted"),
    ("checkout-2", "wave-2", "pending"),
)


def ended(
    outcome: Outcome,
    cause: HaltCause | None,
    *,
    reason: str = "",
    findings: list[Finding] | None = None,
    touched: list[UnitState] | None = None,
) -> ChangeStatus:
    """A change as the workflow ends it."""
    return ChangeStatus(
        change_id="chg-0123456789ab",
        request=make_request(),
        stage=Stage.ENDED,
        outcome=outcome,
        findings=findings or [],
        units=CANARY_ONLY if touched is None else touched,
        halt_cause=cause,
        halt_reason=reason,
        timeline=[TimelineEvent(at=AT, stage=Stage.ENDED, kind="ended", message=reason)],
    )


async def fleet_did_not_answer() -> str:
    """The typed error an apply reports (as its activity failure's type) when the fleet is down."""

    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    provider = FleetProvider("http://127.0.0.1:9", transport=httpx.MockTransport(drop))
    unit = UnitChange(unit_id="checkout-0", phase="canary", before={}, after={"pool_size": 24})
    try:
        with pytest.raises(TargetUnavailable) as caught:
            await provider.apply(
                Target(kind="fleet", selector={"service": "checkout"}), unit, idempotency_key="k"
            )
    finally:
        await provider.aclose()
    return type(caught.value).__name__


@dataclass(frozen=True)
class Case:
    """One ended change and the category it must get."""

    name: str
    status: ChangeStatus
    expected: IncidentCategory
    severity: IncidentSeverity = IncidentSeverity.SEV3


HEALTH_FAILED = "canary health failed: error_rate 0.31 > 0.05"

CASES = [
    Case(
        "a revert that failed outranks everything",
        ended(Outcome.ROLLBACK_FAILED, HaltCause.HEALTH_FAILED, findings=[STALE, VOIDED]),
        IncidentCategory.ROLLBACK_FAILURE,
        IncidentSeverity.SEV1,
    ),
    Case(
        "an operator abort after applying",
        ended(
            Outcome.ROLLED_BACK, HaltCause.ABORTED, reason="aborted by alice", touched=INTO_WAVES
        ),
        IncidentCategory.OPERATOR_ABORT,
        IncidentSeverity.SEV4,
    ),
    Case(
        "a cancelled workflow",
        ended(Outcome.ROLLED_BACK, HaltCause.CANCELLED, reason="the workflow was cancelled"),
        IncidentCategory.OPERATOR_ABORT,
        IncidentSeverity.SEV4,
    ),
    Case(
        "an apply the fleet refused",
        ended(
            Outcome.ROLLED_BACK,
            HaltCause.APPLY_FAILED,
            reason="apply of checkout-1 failed: differs on pool_size: 20 (expected 24)",
            findings=[STALE],
            touched=INTO_WAVES,
        ),
        IncidentCategory.APPLY_ERROR,
        IncidentSeverity.SEV2,
    ),
    Case(
        "health failed after the target moved under an approval",
        ended(
            Outcome.ROLLED_BACK, HaltCause.HEALTH_FAILED, reason=HEALTH_FAILED, findings=[VOIDED]
        ),
        IncidentCategory.APPROVAL_VOIDED,
    ),
    Case(
        "a voided approval outranks a stale assumption",
        ended(
            Outcome.ROLLED_BACK,
            HaltCause.HEALTH_ERROR,
            reason="wave-1 health error",
            findings=[STALE, VOIDED],
            touched=INTO_WAVES,
        ),
        IncidentCategory.APPROVAL_VOIDED,
        IncidentSeverity.SEV2,
    ),
    Case(
        "health failed after the approver was shown a stale assumption",
        ended(Outcome.ROLLED_BACK, HaltCause.HEALTH_FAILED, reason=HEALTH_FAILED, findings=[STALE]),
        IncidentCategory.CONTEXT_BOUNDARY,
    ),
    Case(
        "health source errors after an unverifiable assumption",
        ended(
            Outcome.ROLLED_BACK,
            HaltCause.HEALTH_ERROR,
            reason="canary health error: 3 errors",
            findings=[UNVERIFIABLE],
        ),
        IncidentCategory.CONTEXT_BOUNDARY,
    ),
    Case(
        "health failed with nothing the agent missed",
        ended(Outcome.ROLLED_BACK, HaltCause.HEALTH_FAILED, reason=HEALTH_FAILED, findings=[FLAG]),
        IncidentCategory.HEALTH_REGRESSION,
    ),
    Case(
        "a unit drifted during VERIFY",
        ended(
            Outcome.ROLLED_BACK,
            HaltCause.VERIFY_FAILED,
            reason="checkout-2 drifted: differs on pool_size",
            touched=INTO_WAVES,
        ),
        IncidentCategory.HEALTH_REGRESSION,
        IncidentSeverity.SEV2,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_category_and_severity(case: Case) -> None:
    assert needs_incident(case.status)
    kind = category(case.status)
    assert kind == case.expected
    assert severity(case.status, kind) == case.severity


async def test_an_apply_the_target_did_not_answer_is_a_timeout() -> None:
    error = await fleet_did_not_answer()
    timed_out = ended(Outcome.ROLLED_BACK, HaltCause.APPLY_FAILED).model_copy(
        update={"halt_error": error}
    )
    assert error == "TargetTimeout"
    assert category(timed_out) == IncidentCategory.TIMEOUT
    assert severity(timed_out, IncidentCategory.TIMEOUT) == IncidentSeverity.SEV3
    # Classified by the typed error, never by the wording of the message.
    worded = ended(Outcome.ROLLED_BACK, HaltCause.APPLY_FAILED, reason="it did not answer")
    assert category(worded) == IncidentCategory.APPLY_ERROR


def test_every_category_is_produced() -> None:
    trip = Trip(
        trip_id="brk-0123456789ab",
        agent_id="agent-7",
        breaker="scope_refusals",
        response="pause",
        reason="3 scope refusals within 10 minutes",
        evidence=[{"rule": "scope.target"}],
        at=datetime(2026, 11, 29, tzinfo=UTC),
    )
    breach = IncidentCategory(breach_incident(trip).category)
    produced = {case.expected for case in CASES} | {IncidentCategory.TIMEOUT, breach}
    assert produced == set(IncidentCategory)


@pytest.mark.parametrize(
    ("outcome", "cause"),
    [
        (Outcome.DONE, None),
        (Outcome.EXPIRED, HaltCause.EXPIRED),
        (Outcome.REJECTED, HaltCause.REJECTED),
        (Outcome.BLOCKED, HaltCause.BLOCKED),
        (Outcome.ABORTED, HaltCause.ABORTED),
        (Outcome.ABORTED, HaltCause.CANCELLED),
    ],
)
def test_changes_that_wrote_nothing_open_no_incident(outcome: Outcome, cause: HaltCause) -> None:
    assert not needs_incident(ended(outcome, cause, touched=[]))


def test_a_running_change_opens_no_incident() -> None:
    running = ended(Outcome.ROLLED_BACK, None).model_copy(
        update={"outcome": None, "stage": Stage.CANARY}
    )
    assert not needs_incident(running)


def test_an_approval_voided_incident_names_the_writer_to_find() -> None:
    voided = next(c for c in CASES if c.expected == IncidentCategory.APPROVAL_VOIDED)
    incident = build_incident(voided.status)
    assert incident.category == IncidentCategory.APPROVAL_VOIDED
    assert incident.title == "approval-voided: agent-7 set_config on fleet:service=checkout"
    assert incident.suggestion.startswith(
        "fleet:service=checkout was changed by another writer while this change awaited approval"
    )
    assert 'maintenance_windows: [{name: <writer>, targets: ["fleet:service=checkout"]' in (
        incident.suggestion
    )
    assert "finding `approval-voided` (warn) was shown to the approver" in (
        incident.review_markdown
    )


def test_the_readme_names_exactly_the_categories_there_are() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Audit store and incidents", 1)[1].split("\n## ", 1)[0]
    taxonomy = section.split("Its category comes from", 1)[1].split("Its severity", 1)[0]
    named = set(re.findall(r"`([a-z-]+)`", taxonomy))
    assert named == {c.value for c in IncidentCategory}
