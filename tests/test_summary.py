"""The approver's summary: deterministic and complete."""

from __future__ import annotations

from datetime import UTC, datetime

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
from changegate.summary import real_change, render
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
    assert "per unit: pool_size 20 → 24 on all 4" in text
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


def test_first_line_is_the_real_before_and_after() -> None:
    data = summary_input([])
    text = render(data).text
    assert text.splitlines()[0] == (
        "CHANGE chg-1: agent-7 wants set_config on fleet:service=checkout (4 units): "
        "pool_size 20 → 24 on all 4"
    )
    drifted = data.plan.phases[1][1]
    data.plan.phases[1][1] = drifted.model_copy(update={"before": {"pool_size": 28}})
    summary = render(data)
    assert summary.headline.endswith(f": pool_size 20 → 24 on 3, 28 → 24 on {drifted.unit_id}")
    assert summary.text.splitlines()[0] == f"CHANGE chg-1: {summary.headline}"


def test_real_change_lists_a_minority_by_name_and_separates_multi_key_diffs() -> None:
    def unit(name: str, before: int, after: int) -> UnitChange:
        return UnitChange(
            unit_id=name,
            phase="canary",
            before={"pool_size": before, "timeout_ms": 800},
            after={"pool_size": after, "timeout_ms": 900},
        )

    plan = ChangePlan(phases=[[unit("a", 20, 24), unit("b", 28, 24), unit("c", 30, 24)]])
    assert real_change(plan) == (
        "pool_size 20 → 24, timeout_ms 800 → 900 on a; "
        "pool_size 28 → 24, timeout_ms 800 → 900 on b; "
        "pool_size 30 → 24, timeout_ms 800 → 900 on c"
    )
    assert real_change(ChangePlan(phases=[])) == ""
