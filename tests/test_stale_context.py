"""Stale context about what a change writes: `stale-written-key` and `direction-reversed`."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import JsonValue

from changegate.models import TargetObservation, UnitObservation
from changegate.policy import apply_finding_actions, check_assumptions, load_policy
from changegate.policy.assumptions import direction_findings


def observe(**pools: JsonValue) -> TargetObservation:
    return TargetObservation(
        target_label="fleet:service=checkout",
        observed_at=datetime(2026, 1, 1, tzinfo=UTC),
        units=[
            UnitObservation(unit_id=unit, state={"pool_size": pool, "version": "1.4.2"})
            for unit, pool in pools.items()
        ],
    )


CHECKOUT = observe(**{"checkout-0": 20, "checkout-1": 20, "checkout-2": 28, "checkout-3": 20})


def test_a_stale_belief_about_a_written_key_is_its_own_blocking_finding() -> None:
    [finding] = check_assumptions(
        {"unit_count": 4, "units.*.pool_size": 20}, CHECKOUT, writes={"pool_size": 24}
    )
    assert finding.code == "stale-written-key" and finding.severity == "block"
    assert finding.path == "units.*.pool_size"
    assert finding.expected == 20 and finding.actual == 28
    assert "pool_size is a key this change writes" in finding.message
    assert "observe_target" in finding.message and "resubmit" in finding.message


def test_a_stale_belief_about_anything_else_stays_a_warning() -> None:
    drifted = observe(a=20, b=20)
    drifted.units[1].state["version"] = "1.4.3"
    [finding] = check_assumptions({"units.*.version": "1.4.2"}, drifted, writes={"pool_size": 24})
    assert finding.code == "stale-assumption" and finding.severity == "warn"
    assert check_assumptions({"units.*.pool_size": 28}, CHECKOUT)[0].code == "stale-assumption"


def test_a_parameter_no_unit_reports_is_not_a_written_key() -> None:
    [finding] = check_assumptions({"units.*.pool_size": 20}, CHECKOUT, writes={"replicas": 3})
    assert finding.code == "stale-assumption"


def test_direction_reversed_names_the_units_the_change_would_move_the_other_way() -> None:
    [finding] = direction_findings({"units.*.pool_size": 20}, CHECKOUT, writes={"pool_size": 24})
    assert finding.code == "direction-reversed" and finding.severity == "block"
    assert finding.path == "units.checkout-2.pool_size"
    assert finding.expected == 20 and finding.actual == 28
    assert "goes 20 → 24 (a raise)" in finding.message
    assert "checkout-2 is at 28 (28 → 24)" in finding.message
    assert "would lower it" in finding.message and "observe_target" in finding.message


def test_the_issue_example_believed_raise_is_really_a_lower() -> None:
    live = observe(db=800)
    [finding] = direction_findings({"units.db.pool_size": 250}, live, writes={"pool_size": 400})
    assert "goes 250 → 400 (a raise)" in finding.message and "would lower it" in finding.message


def test_a_believed_lower_that_really_raises_is_reversed_for_every_such_unit() -> None:
    live = observe(a=10, b=12, c=40)
    [finding] = direction_findings({"units.*.pool_size": 40}, live, writes={"pool_size": 30})
    assert finding.path == "units.*.pool_size"
    assert finding.actual == {"a": 10, "b": 12} and finding.expected == {"a": 40, "b": 40}
    assert "(a lower)" in finding.message and "would raise them" in finding.message


def test_a_unit_specific_belief_wins_over_the_pattern() -> None:
    beliefs: dict[str, JsonValue] = {"units.*.pool_size": 20, "units.checkout-2.pool_size": 28}
    assert direction_findings(beliefs, CHECKOUT, writes={"pool_size": 24}) == []


def test_no_direction_without_a_belief_a_number_or_movement() -> None:
    writes: dict[str, JsonValue] = {"pool_size": 24}
    assert direction_findings({}, CHECKOUT, writes=writes) == []
    assert direction_findings({"units.*.pool_size": "20"}, CHECKOUT, writes=writes) == []
    assert direction_findings({"units.*.pool_size": 20}, CHECKOUT, writes={"pool_size": 28}) == []
    assert direction_findings({"units.*.pool_size": 24}, CHECKOUT, writes=writes) == []
    assert (
        direction_findings({"units.*.version": "1.4.1"}, CHECKOUT, writes={"version": "1.5"}) == []
    )


def test_the_default_policy_blocks_both_and_a_policy_can_soften_them() -> None:
    policy = load_policy(None)
    assert policy.findings["stale-written-key"] == "block"
    assert policy.findings["direction-reversed"] == "block"
    findings = direction_findings({"units.*.pool_size": 20}, CHECKOUT, writes={"pool_size": 24})
    softened = policy.model_copy(update={"findings": {"direction-reversed": "warn"}})
    assert [f.severity for f in apply_finding_actions(findings, softened)] == ["warn"]
