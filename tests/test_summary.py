"""The approver's summary: deterministic and complete."""

from __future__ import annotations

from datetime import UTC, datetime

from changegate.activities import render
from changegate.models import (
    ChangePlan,
    Finding,
    SummaryInput,
    TargetObservation,
    UnitChange,
    UnitObservation,
    ValidationReport,
)
from changegate.providers.phasing import phase_name, split_phases
from tests.support import make_request


def summary_input(findings: list[Finding]) -> SummaryInput:
    request = make_request(parameters={"pool_size": 24})
    units = [
        UnitObservation(unit_id=f"checkout-{i}", state={"pool_size": 20}, healthy=True)
        for i in range(4)
    ]
    observation = TargetObservation(
        target_label="fleet:service=checkout",
        observed_at=datetime(2026, 1, 1, tzinfo=UTC),
        units=units,
    )
    phases = split_phases([u.unit_id for u in units], request.rollout)
    plan = ChangePlan(
        phases=[
            [
                UnitChange(
                    unit_id=u,
                    phase=phase_name(i),
                    before={"pool_size": 20},
                    after={"pool_size": 24},
                )
                for u in ids
            ]
            for i, ids in enumerate(phases)
        ]
    )
    return SummaryInput(
        change_id="chg-1",
        request=request,
        observation=observation,
        report=ValidationReport(findings=findings),
        plan=plan,
    )


def test_summary_is_deterministic_and_puts_what_the_agent_did_not_know_first() -> None:
    finding = Finding(
        code="stale-assumption",
        severity="warn",
        path="units.*.pool_size",
        expected=18,
        actual=20,
        message="the agent assumed units.*.pool_size = 18",
    )
    data = summary_input([finding])
    first, second = render(data), render(data)
    assert first == second
    text = first.text
    sections = [
        "WHAT THE AGENT DID NOT KNOW",
        "WHAT IT WANTS AND WHY",
        "WHAT IT BELIEVES",
        "WHAT IS TRUE NOW",
        "BLAST RADIUS",
        "ROLLOUT PLAN",
        "HOW HEALTH IS JUDGED",
        "HOW IT ROLLS BACK",
    ]
    positions = [text.index(s) for s in sections]
    assert positions == sorted(positions)
    assert "[WARN ] stale-assumption" in text
    assert "canary: checkout-0" in text and "wave-2: checkout-3" in text
    assert "pool_size: 20 -> 24" in text
    assert "4 of 4 units of fleet:service=checkout will change" in text


def test_summary_says_so_when_nothing_was_missed() -> None:
    assert "Nothing: every assumption matches" in render(summary_input([])).text


def test_phases_split_canary_then_even_waves() -> None:
    request = make_request(rollout={"canary_units": 1, "waves": 2})
    assert split_phases(["a", "b", "c", "d", "e"], request.rollout) == [
        ["a"],
        ["b", "c"],
        ["d", "e"],
    ]
    assert split_phases(["a"], request.rollout) == [["a"]]
    assert split_phases(["a", "b"], request.rollout) == [["a"], ["b"]]
