"""The policy package: loading, admission rules, context findings, risk tiers, approvals."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

import changegate.policy as policy_pkg
from changegate.admission import AdmissionRefused, Gate
from changegate.kinds.fleet import FleetProvider
from changegate.models import ChangeRequest, Finding, IncidentSeverity, Outcome
from changegate.policy import (
    ADMISSION_RULES,
    ActiveChange,
    Admission,
    AdmissionState,
    DecisionVerdict,
    KillSwitch,
    OpenIncident,
    Policy,
    PolicyError,
    RecentChange,
    RiskAssessment,
    admit,
    apply_finding_actions,
    context_findings,
    extra_approvals,
    judge_decision,
    load_policy,
    parse_policy,
    quorum_reached,
    risk_tier,
)
from changegate.store import list_refusals, open_store

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)  # a Monday
CHECKOUT = "fleet:service=checkout"
PAYMENTS = "fleet:service=payments"
SEARCH = "fleet:service=search"
FP = "fp-pool-24"


def make_request(
    *,
    agent_id: str = "agent-7",
    service: str = "checkout",
    instances: str | None = None,
    operation: str = "set_config",
    parameters: dict[str, Any] | None = None,
    evidence: list[dict[str, str]] | None = None,
    risk_hint: str | None = None,
    on_behalf_of: str | None = None,
    rollout: dict[str, Any] | None = None,
) -> ChangeRequest:
    agent: dict[str, Any] = {"agent_id": agent_id}
    if on_behalf_of:
        agent["on_behalf_of"] = on_behalf_of
    selector = {"service": service}
    if instances is not None:
        selector["instances"] = instances
    return ChangeRequest.model_validate(
        {
            "agent": agent,
            "intent": "Raise the connection pool so checkout stops queueing.",
            "target": {"kind": "fleet", "selector": selector},
            "change": {"operation": operation, "parameters": parameters or {"pool_size": 24}},
            "evidence": evidence or [{"source": "dashboard/checkout", "excerpt": "p99 up"}],
            "risk_hint": risk_hint,
            "rollout": rollout or {},
        }
    )


def make_policy(**sections: Any) -> Policy:
    base: dict[str, Any] = {
        "agents": {
            "agent-7": {
                "targets": [CHECKOUT, SEARCH],
                "operations": ["set_config"],
                "max_units": 10,
                "changes_per_hour": 3,
                "max_in_flight": 2,
            },
            "*": {"targets": ["fleet:*"], "operations": ["set_config"]},
        },
        "topology": {CHECKOUT: [PAYMENTS]},
    }
    return Policy.model_validate({**base, **sections})


def change(
    change_id: str,
    *,
    minutes_ago: float,
    outcome: Outcome | None = Outcome.DONE,
    target: str = CHECKOUT,
    agent_id: str = "agent-7",
    fingerprint: str = "fp-other",
    parameters: dict[str, Any] | None = None,
) -> RecentChange:
    return RecentChange(
        change_id=change_id,
        agent_id=agent_id,
        target_label=target,
        fingerprint=fingerprint,
        parameters=parameters or {},
        outcome=outcome,
        submitted_at=NOW - timedelta(minutes=minutes_ago),
    )


def judge(
    request: ChangeRequest | None = None,
    policy: Policy | None = None,
    **state: Any,
) -> Admission:
    return admit(
        request or make_request(),
        policy=policy or make_policy(),
        now=NOW,
        state=AdmissionState(**state),
        fingerprint=FP,
    )


def refused(admission: Admission, rule: str) -> Admission:
    assert not admission.admitted, admission
    assert admission.rule == rule, admission
    return admission


# --- loading -------------------------------------------------------------------------------


def test_default_policy_loads_with_the_documented_values() -> None:
    policy = load_policy(None)
    scope = policy.agents["*"]
    assert (scope.targets, scope.operations) == (["fleet:*"], ["set_config"])
    assert (scope.max_units, scope.changes_per_hour, scope.max_in_flight) == (20, 30, 5)
    tiers = policy.risk_tiers
    assert (tiers.low.approvals, tiers.medium.approvals, tiers.high.approvals) == (1, 1, 2)
    assert tiers.high.roles == ["sre"]
    assert policy.freeze_windows == []
    assert policy.topology == {CHECKOUT: [PAYMENTS]}
    assert policy.one_change_per_target is True
    assert policy.findings["maintenance-window"] == "block"
    assert policy.findings["dependency-change-active"] == "extra_approver"
    assert policy.scope_for("anyone") == ("*", scope)
    assert policy.lookback() == timedelta(hours=1)


def test_a_policy_file_is_read_and_keeps_default_finding_actions(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "agents:\n  agent-7: {targets: ['fleet:*'], operations: [set_config]}\n"
        "findings: {flag: block}\n"
        "freeze_windows:\n"
        "  - {name: weekend, weekly: {days: [sat, sun], start_time: 10:00, end_time: 18:30}}\n"
    )
    policy = load_policy(path)
    assert policy.findings["flag"] == "block"
    assert policy.findings["open-incident"] == "block"
    weekly = policy.freeze_windows[0].weekly
    assert weekly is not None
    # Unquoted 10:00 would be the base-60 integer 600 to a plain YAML 1.1 loader.
    assert (weekly.start_time, weekly.end_time) == (time(10, 0), time(18, 30))


def test_a_bad_policy_lists_every_problem_with_its_path() -> None:
    text = """
agents:
  agent-7:
    targets: ["fleet:*"]
    operations: set_config
    max_unit: 3
    changes_per_hour: 0
risk_tiers:
  extreme: {approvals: 3}
freeze_windows:
  - name: backwards
    start: 2025-01-02T00:00:00Z
    end: 2025-01-01T00:00:00Z
  - {name: both, start: 2025-01-01T00:00:00Z, end: 2025-01-02T00:00:00Z,
     weekly: {days: [mon], start_time: "10:00", end_time: "11:00"}}
context_sources:
  - {kind: http}
findings: {flag: ignore}
topology: {"fleet:a": ["fleet:a"]}
"""
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="bad.yaml")
    lines = str(caught.value).splitlines()
    assert lines[0] == "bad.yaml is not a valid policy:"
    assert set(lines[1:]) == {
        "- agents.agent-7.operations: Input should be a valid list",
        "- agents.agent-7.changes_per_hour: Input should be greater than or equal to 1",
        "- agents.agent-7.max_unit: unknown field 'max_unit'; did you mean 'max_units'? "
        "expected one of: targets, operations, max_units, changes_per_hour, max_in_flight",
        "- risk_tiers.extreme: unknown field 'extreme'; expected one of: low, medium, high",
        "- freeze_windows[0]: end (2025-01-01 00:00 UTC) must be after start "
        "(2025-01-02 00:00 UTC)",
        "- freeze_windows[1]: give either start and end, or weekly, not both",
        "- context_sources[0].url: Field required",
        "- findings.flag: Input should be 'block', 'extra_approver' or 'warn'",
        "- topology: a target cannot depend on itself: fleet:a",
    }


def test_a_quorum_no_listed_approver_can_meet_is_refused() -> None:
    text = "approvers: {alice: {roles: [dba]}}\nrisk_tiers: {high: {approvals: 2, roles: [sre]}}"
    with pytest.raises(
        PolicyError,
        match=r"risk_tiers\.high: needs 2 approval\(s\) from roles "
        r"sre, but only 0 listed approver\(s\) qualify \(none\)",
    ):
        parse_policy(text)


def test_unreadable_or_non_yaml_policies_say_where(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"cannot read policy file .*missing\.yaml"):
        load_policy(tmp_path / "missing.yaml")
    with pytest.raises(PolicyError, match=r"^p\.yaml:1:7: not valid YAML"):
        parse_policy("a: [1,", source="p.yaml")
    with pytest.raises(PolicyError, match=r"a policy is a mapping of sections .*not a list"):
        parse_policy("- 1", source="p.yaml")


# --- admission -----------------------------------------------------------------------------


def test_the_rule_order_is_fixed() -> None:
    assert [name for name, _ in ADMISSION_RULES] == [
        "kill_switch",
        "scope.agent",
        "scope.target",
        "scope.operation",
        "blast_radius",
        "freeze_window",
        "incident_freeze",
        "one_active_change",
        "loop",
        "flip_flop",
        "rate.in_flight",
        "rate.per_hour",
    ]


def test_a_plain_request_is_admitted() -> None:
    assert judge() == Admission(admitted=True)


def test_kill_switch() -> None:
    other = KillSwitch(scope="agent:agent-3", mode="pause", engaged=True, actor="bob")
    released = KillSwitch(scope="global", mode="abort", engaged=False, actor="bob")
    assert judge(kill_switches=[other, released]).admitted

    mine = KillSwitch(
        scope="agent:agent-7", mode="pause", engaged=True, actor="bob", reason="runaway agent"
    )
    got = refused(judge(kill_switches=[mine]), "kill_switch")
    assert got.reason == "the kill switch for agent-7 is engaged (mode pause) by bob: runaway agent"
    assert "other agents" in got.would_pass and "released" in got.would_pass

    stop = KillSwitch(scope="global", mode="abort", engaged=True, actor="oncall", reason="sev1")
    got = refused(judge(kill_switches=[stop]), "kill_switch")
    assert got.reason == "the global kill switch is engaged (mode abort) by oncall: sev1"


def test_scope_agent() -> None:
    policy = make_policy(agents={"agent-7": {"targets": ["*"], "operations": ["*"]}})
    assert judge(make_request(agent_id="agent-7"), policy).admitted
    got = refused(judge(make_request(agent_id="agent-9"), policy), "scope.agent")
    assert "agent agent-9 has no scope" in got.reason
    assert "agent-7" in got.would_pass


def test_scope_target() -> None:
    assert judge(make_request(service="search")).admitted
    got = refused(judge(make_request(service="db")), "scope.target")
    assert got.reason == (
        "target fleet:service=db is outside agent-7's scope "
        "(fleet:service=checkout, fleet:service=search)"
    )
    assert (
        got.would_pass == "propose a change on one of: fleet:service=checkout, fleet:service=search"
    )

    other = make_request(agent_id="agent-3", service="db")
    policy = make_policy(agents={"*": {"targets": ["fleet:service=web*"], "operations": ["*"]}})
    got = refused(judge(other, policy), "scope.target")
    assert "from the default '*' scope" in got.reason


def test_scope_operation() -> None:
    got = refused(judge(make_request(operation="restart")), "scope.operation")
    assert got.reason == "operation restart is outside agent-7's scope (set_config)"
    assert got.would_pass == "propose one of: set_config"


def instances(count: int, service: str = "checkout") -> str:
    return ",".join(f"{service}-{i}" for i in range(count))


def test_blast_radius_counts_the_instances_a_selector_lists() -> None:
    assert judge(make_request(instances=instances(10))).admitted
    # Listed twice, counted once.
    assert judge(make_request(instances=instances(10) + ",checkout-0")).admitted
    # Without `instances` the count is unknown until RECON; VALIDATE holds it to the limit.
    assert judge(make_request()).admitted

    got = refused(judge(make_request(instances=instances(25))), "blast_radius")
    assert got.reason == (
        "the selector lists 25 instances of fleet:service=checkout; "
        "agent-7 may touch at most 10 units per change"
    )
    assert got.would_pass == "a change listing at most 10 instances: split it into 3 changes"

    unlimited = make_request(agent_id="agent-3", instances=instances(25))
    assert judge(unlimited).admitted  # the "*" scope sets no max_units
    default = make_policy(
        agents={"*": {"targets": ["fleet:*"], "operations": ["set_config"], "max_units": 2}}
    )
    got = refused(judge(unlimited, default), "blast_radius")
    assert got.reason.endswith("at most 2 units per change, from the default '*' scope")


def test_the_gate_refuses_and_records_a_selector_listing_too_many_instances(
    tmp_path: Path,
) -> None:
    fleet = FleetProvider("http://127.0.0.1:9")  # resolves selectors; never connects
    with open_store(tmp_path / "audit.db") as store:
        gate = Gate(store=store, policy=make_policy(), resolve=fleet.resolve)
        with pytest.raises(AdmissionRefused) as caught:
            gate.admit(make_request(instances=instances(11)), change_id="chg-wide", now=NOW)
        assert caught.value.rule == "blast_radius"
        assert "lists 11 instances" in caught.value.reason
        with store.session() as session:
            assert [r.rule for r in list_refusals(session=session)] == ["blast_radius"]

        # The canonical selector is what admission counts: duplicates resolve away.
        listed = "checkout-1,checkout-0,checkout-1"
        admitted = gate.admit(make_request(instances=listed), change_id="chg-two", now=NOW)
        assert admitted.target.selector["instances"] == "checkout-0,checkout-1"


def test_freeze_window() -> None:
    def freeze(**window: Any) -> Policy:
        return make_policy(freeze_windows=[{"name": "holidays", "reason": "peak", **window}])

    on_checkout = {"targets": ["fleet:service=check*"]}
    ended = freeze(start=NOW - timedelta(days=2), end=NOW - timedelta(days=1), **on_checkout)
    elsewhere = freeze(start=NOW, end=NOW + timedelta(hours=2), targets=[SEARCH])
    assert judge(policy=ended).admitted
    assert judge(policy=elsewhere).admitted

    active = freeze(start=NOW - timedelta(hours=1), end=NOW + timedelta(hours=2), **on_checkout)
    got = refused(judge(policy=active), "freeze_window")
    assert got.reason == (
        "freeze window 'holidays' (peak) is active on fleet:service=checkout "
        "until 2025-06-02 14:00 UTC"
    )
    assert got.would_pass == "the same change submitted after 2025-06-02 14:00 UTC"

    weekly = freeze(weekly={"days": ["mon"], "start_time": "11:00", "end_time": "13:30"})
    got = refused(judge(policy=weekly), "freeze_window")
    assert "until 2025-06-02 13:30 UTC" in got.reason
    sunday_night = freeze(weekly={"days": ["sun"], "start_time": "22:00", "end_time": "12:00"})
    assert judge(policy=sunday_night).admitted  # it ended at 12:00 on Monday


def test_a_weekly_window_over_midnight_and_back_to_back_days() -> None:
    policy = make_policy(
        freeze_windows=[
            {
                "name": "nights",
                "weekly": {"days": ["sun"], "start_time": "22:00", "end_time": "12:30"},
            },
            {
                "name": "early-week",
                "weekly": {"days": ["mon", "tue"], "start_time": "00:00", "end_time": "00:00"},
            },
        ]
    )
    nights, early_week = policy.freeze_windows
    assert nights.active_until(NOW) == datetime(2025, 6, 2, 12, 30, tzinfo=UTC)
    assert early_week.active_until(NOW) == datetime(2025, 6, 4, 0, 0, tzinfo=UTC)
    assert nights.active_until(NOW + timedelta(hours=1)) is None


def incident(
    severity: str,
    *,
    target: str = CHECKOUT,
    restored: bool = True,
    minutes_ago: float = 5,
    incident_id: str = "inc-7",
) -> OpenIncident:
    return OpenIncident(
        incident_id=incident_id,
        target_label=target,
        severity=IncidentSeverity(severity),
        restored=restored,
        opened_at=NOW - timedelta(minutes=minutes_ago),
    )


def test_incident_freeze_of_unknown_severity_holds_the_target_and_its_dependents() -> None:
    assert judge(open_incident_targets=[SEARCH]).admitted
    got = refused(judge(open_incident_targets=[CHECKOUT]), "incident_freeze")
    assert got.reason.startswith("open incident on fleet:service=checkout; ")
    assert "once the incident on fleet:service=checkout is closed" in got.would_pass
    upstream = refused(
        judge(open_incident_targets=[PAYMENTS], open_incidents={PAYMENTS: "inc-3"}),
        "incident_freeze",
    )
    assert upstream.reason.startswith(
        "open incident inc-3 on fleet:service=payments, a dependency of fleet:service=checkout"
    )
    assert "`changegate incident close inc-3`" in upstream.would_pass


@pytest.mark.parametrize("severity", ["SEV1", "SEV2"])
def test_sev1_and_sev2_freeze_the_target_and_its_dependents_until_closed(severity: str) -> None:
    on_payments = incident(severity, target=PAYMENTS, minutes_ago=600)
    got = refused(judge(incidents=[on_payments]), "incident_freeze")
    assert got.reason == (
        f"open incident inc-7 ({severity}) on fleet:service=payments, a dependency of "
        f"fleet:service=checkout; {severity} freezes its target and its dependents until it "
        "is closed"
    )
    assert got.would_pass == (
        "the same change once inc-7 is closed (`changegate incident close inc-7`)"
    )
    refused(judge(incidents=[incident(severity, minutes_ago=600)]), "incident_freeze")
    # payments depends on nothing: an incident on checkout does not freeze it.
    payments = make_request(agent_id="agent-3", service="payments")
    assert judge(payments, incidents=[incident(severity)]).admitted


@pytest.mark.parametrize("severity", ["SEV3", "SEV4"])
def test_a_restored_sev3_or_sev4_freezes_only_its_target_while_it_cools_off(
    severity: str,
) -> None:
    fresh = incident(severity, minutes_ago=5)
    got = refused(judge(incidents=[fresh]), "incident_freeze")
    assert got.reason == (
        f"open incident inc-7 ({severity}) on fleet:service=checkout; a contained, restored "
        f"{severity} freezes only its target; cooling off until 2025-06-02 12:10 UTC"
    )
    assert got.would_pass == (
        "the same change after 2025-06-02 12:10 UTC, or once inc-7 is closed "
        "(`changegate incident close inc-7`)"
    )
    # Cooling off runs 15 minutes (the default) from the incident's opening.
    assert judge(incidents=[incident(severity, minutes_ago=15)]).admitted
    # Never its dependents, even while it cools off.
    assert judge(incidents=[incident(severity, target=PAYMENTS, minutes_ago=1)]).admitted
    longer = make_policy(incident_cooling_off_minutes=30)
    refused(judge(policy=longer, incidents=[incident(severity, minutes_ago=15)]), "incident_freeze")


def test_a_sev3_not_restored_freezes_as_sev2() -> None:
    stuck = incident("SEV3", target=PAYMENTS, restored=False, minutes_ago=600)
    got = refused(judge(incidents=[stuck]), "incident_freeze")
    assert "(SEV3) on fleet:service=payments, a dependency of" in got.reason


def test_the_longest_freeze_is_named_first() -> None:
    cooling = incident("SEV3", incident_id="inc-1")
    closing = incident("SEV2", target=PAYMENTS, incident_id="inc-2")
    got = refused(judge(incidents=[cooling, closing]), "incident_freeze")
    assert got.reason.startswith("open incident inc-2 (SEV2) on fleet:service=payments")
    assert "(and 1 more open incident(s))" in got.reason


def test_one_active_change() -> None:
    done = change("chg-1", minutes_ago=5, agent_id="agent-3")
    assert judge(recent_changes=[done]).admitted
    running = change("chg-2", minutes_ago=5, outcome=None, agent_id="agent-3")
    got = refused(judge(recent_changes=[running]), "one_active_change")
    assert got.reason == (
        "change chg-2 by agent-3 is still active on fleet:service=checkout; "
        "the policy allows one active change per target"
    )
    assert got.would_pass == "the same change after chg-2 ends (or is aborted)"
    relaxed = make_policy(one_change_per_target=False)
    assert judge(policy=relaxed, recent_changes=[running]).admitted


def test_loop() -> None:
    def attempt(change_id: str, minutes_ago: float, outcome: Outcome) -> RecentChange:
        # Another agent's attempts: the fingerprint is what repeats, not the agent.
        return change(
            change_id, minutes_ago=minutes_ago, outcome=outcome, agent_id="agent-3", fingerprint=FP
        )

    failed = [attempt("chg-1", 50, Outcome.ROLLED_BACK), attempt("chg-2", 30, Outcome.REJECTED)]
    long_ago = attempt("chg-0", 90, Outcome.BLOCKED)
    succeeded = attempt("chg-9", 20, Outcome.DONE)
    assert judge(recent_changes=[*failed, long_ago, succeeded]).admitted

    third = attempt("chg-3", 10, Outcome.ROLLBACK_FAILED)
    got = refused(judge(recent_changes=[*failed, third]), "loop")
    assert got.reason == (
        "this change (fingerprint fp-pool-24) already failed 3 times in the last 60 minutes "
        "(chg-1 ROLLED_BACK, chg-2 REJECTED, chg-3 ROLLBACK_FAILED); "
        "the policy stops a change after 3 failures"
    )
    assert got.would_pass.endswith("or the same change after 2025-06-02 12:10 UTC")


def test_flip_flop() -> None:
    history = [
        change("chg-1", minutes_ago=40, parameters={"pool_size": 24}),
        change("chg-2", minutes_ago=20, parameters={"pool_size": 16}),
    ]
    assert judge(make_request(parameters={"pool_size": 32}), recent_changes=history).admitted
    rolled_back = [history[0], history[1].model_copy(update={"outcome": Outcome.ROLLED_BACK})]
    assert judge(recent_changes=rolled_back).admitted
    on_other = [c.model_copy(update={"target_label": SEARCH}) for c in history]
    assert judge(recent_changes=on_other).admitted

    got = refused(judge(recent_changes=history), "flip_flop")
    assert got.reason == (
        "pool_size on fleet:service=checkout would flip back to 24: within the last 60 minutes "
        "chg-1 set it to 24, then chg-2 set it to 16 (A -> B -> A)"
    )
    assert got.would_pass == (
        "keep pool_size at 16 or choose a value other than 24, "
        "or the same change after 2025-06-02 12:20 UTC"
    )


def test_rate_in_flight() -> None:
    first = change("chg-1", minutes_ago=90, outcome=None, target=SEARCH)
    elsewhere = change("chg-2", minutes_ago=80, outcome=None, target=PAYMENTS, agent_id="agent-3")
    assert judge(recent_changes=[first, elsewhere]).admitted
    second = change("chg-3", minutes_ago=70, outcome=None, target="fleet:service=web")
    got = refused(judge(recent_changes=[first, second]), "rate.in_flight")
    assert got.reason == (
        "agent-7 already has 2 changes in flight (chg-1, chg-3); at most 2 may run at once; "
        "when one ends cannot be known, so retry_after is a poll interval (30 s), not a promise"
    )
    assert got.would_pass == "the same change once one of chg-1, chg-3 ends"
    assert got.retry_after == 30


def test_rate_per_hour() -> None:
    def submitted(change_id: str, minutes_ago: float) -> RecentChange:
        return change(change_id, minutes_ago=minutes_ago, target=f"fleet:service={change_id}")

    within = [submitted("a", 50), submitted("b", 20)]
    assert judge(recent_changes=[*within, submitted("old", 61)]).admitted
    got = refused(judge(recent_changes=[*within, submitted("c", 5)]), "rate.per_hour")
    assert got.reason == "agent-7 submitted 3 changes in the last hour; the limit is 3 per hour"
    assert got.would_pass == "the same change after 2025-06-02 12:10 UTC, when a leaves the hour"
    assert got.retry_after == 10 * 60  # a, submitted 50 minutes ago, leaves in 10
    # Over the limit: the count falls below it when the oldest of the last `limit` leaves.
    over = [submitted("x", 55), *within, submitted("c", 5)]
    assert refused(judge(recent_changes=over), "rate.per_hour").retry_after == 10 * 60


def test_the_first_broken_rule_is_reported() -> None:
    stop = KillSwitch(scope="global", mode="pause", engaged=True, actor="ops")
    request = make_request(service="db", operation="restart")
    refused(judge(request, kill_switches=[stop]), "kill_switch")
    refused(judge(request), "scope.target")


# --- context findings ----------------------------------------------------------------------


def findings_for(
    request: ChangeRequest | None = None,
    *,
    policy: Policy | None = None,
    label: str = CHECKOUT,
    active: list[ActiveChange] | None = None,
    incidents: set[str] | None = None,
    flags: dict[str, Any] | None = None,
) -> list[Finding]:
    return context_findings(
        request or make_request(),
        policy=policy or make_policy(),
        now=NOW,
        observation_label=label,
        active_changes=active or [],
        open_incident_targets=incidents or set(),
        flags=flags or {},
    )


def test_maintenance_window_active_on_the_target_or_a_dependency() -> None:
    def maintenance(target: str, hours: float) -> Policy:
        start = NOW - timedelta(hours=1)
        window = {
            "name": "db-upgrade",
            "targets": [target],
            "start": start,
            "end": start + timedelta(hours=hours),
        }
        return make_policy(maintenance_windows=[window])

    assert findings_for(policy=maintenance(CHECKOUT, hours=0.5)) == []
    assert findings_for(policy=maintenance(SEARCH, hours=3)) == []
    [found] = findings_for(policy=maintenance(CHECKOUT, hours=3))
    assert (found.code, found.severity) == ("maintenance-window", "block")
    assert found.message == (
        "maintenance window 'db-upgrade' is active on fleet:service=checkout until "
        "2025-06-02 14:00 UTC; neither the agent's intent nor its evidence mentions it"
    )
    [upstream] = findings_for(policy=maintenance(PAYMENTS, hours=3))
    assert "active on fleet:service=payments, a dependency of fleet:service=checkout" in (
        upstream.message
    )
    cites = make_request(evidence=[{"source": "calendar", "excerpt": "db-upgrade until 14:00"}])
    [cited] = findings_for(cites, policy=maintenance(CHECKOUT, hours=3))
    assert cited.message.endswith("the agent's intent or evidence mentions it")
    assert cited.severity == "block"


def test_active_changes_on_dependencies_and_dependents() -> None:
    on_payments = ActiveChange(change_id="chg-5", target_label=PAYMENTS, agent_id="agent-3")
    on_search = ActiveChange(change_id="chg-6", target_label=SEARCH, agent_id="agent-3")
    [found] = findings_for(active=[on_payments, on_search])
    assert (found.code, found.severity) == ("dependency-change-active", "warn")
    assert found.message.startswith(
        "change chg-5 by agent-3 is active on fleet:service=payments, "
        "a dependency of fleet:service=checkout"
    )
    on_checkout = ActiveChange(change_id="chg-7", target_label=CHECKOUT, agent_id="agent-3")
    [dependent] = findings_for(
        make_request(service="payments"), label=PAYMENTS, active=[on_checkout]
    )
    assert (
        "chg-7 by agent-3 is active on fleet:service=checkout, which depends on "
        "fleet:service=payments" in dependent.message
    )
    [same] = findings_for(active=[on_checkout])
    assert same.code == "target-change-active"
    policy = make_policy()
    assert extra_approvals([found, same], policy) == 2


def test_open_incident_on_the_target_or_a_dependency() -> None:
    assert findings_for(incidents={SEARCH}) == []
    found = findings_for(incidents={CHECKOUT, PAYMENTS})
    assert [(f.code, f.severity) for f in found] == [("open-incident", "block")] * 2
    assert found[0].message.startswith("open incident on fleet:service=checkout: ")
    assert found[1].message.startswith(
        "open incident on fleet:service=payments, a dependency of fleet:service=checkout: "
    )


def test_open_incident_findings_follow_the_freeze_by_severity() -> None:
    def found(*incidents: OpenIncident) -> list[Finding]:
        return context_findings(
            make_request(),
            policy=make_policy(),
            now=NOW,
            observation_label=CHECKOUT,
            active_changes=[],
            open_incidents=incidents,
            flags={},
        )

    [sev2] = found(incident("SEV2", target=PAYMENTS))
    assert (sev2.code, sev2.severity) == ("open-incident", "block")
    assert sev2.message.startswith(
        "open incident inc-7 (SEV2) on fleet:service=payments, a dependency of "
        "fleet:service=checkout: SEV2 freezes its target and its dependents until it is closed"
    )
    assert found(incident("SEV3", target=PAYMENTS)) == []
    [cooling] = found(incident("SEV3"))
    assert "cooling off until 2025-06-02 12:10 UTC" in cooling.message
    assert found(incident("SEV3", minutes_ago=20)) == []


def test_flags_matching_the_target() -> None:
    flags = {"fleet:service=check*": {"new-cart": True}, "fleet:service=search": "off"}
    [found] = findings_for(flags=flags)
    assert (found.code, found.severity) == ("flag", "warn")
    assert found.actual == {"pattern": "fleet:service=check*", "value": {"new-cart": True}}
    assert "flag fleet:service=check* = {'new-cart': True} applies to fleet:service=checkout" in (
        found.message
    )
    assert found.message.endswith("neither the agent's intent nor its evidence mentions it")
    cites = make_request(evidence=[{"source": "flags", "excerpt": "new-cart is on"}])
    [cited] = findings_for(cites, flags=flags)
    assert cited.message.endswith("the agent's intent or evidence mentions it")


def test_policy_actions_set_the_severity_of_any_finding() -> None:
    policy = make_policy(findings={"stale-assumption": "block"})
    stale = Finding(code="stale-assumption", severity="warn", message="m")
    other = Finding(code="unverifiable-assumption", severity="warn", message="m")
    assert [f.severity for f in apply_finding_actions([stale, other], policy)] == [
        "block",
        "warn",
    ]


# --- risk tiers ----------------------------------------------------------------------------


def assess(
    request: ChangeRequest | None = None,
    *,
    units: int = 4,
    findings: list[Finding] | None = None,
    policy: Policy | None = None,
) -> RiskAssessment:
    return risk_tier(
        request or make_request(),
        policy=policy or load_policy(None),
        unit_count=units,
        findings=findings or [],
    )


def warn(code: str = "flag") -> Finding:
    return Finding(code=code, severity="warn", message="m")


def test_blast_radius_sets_the_base_tier() -> None:
    assert [assess(units=n).tier for n in (5, 6, 20, 21)] == ["low", "medium", "medium", "high"]
    high = assess(units=21)
    assert high.required_approvals == 2
    assert high.roles == ["sre"]


def test_deploys_outrank_config_and_destructive_operations_are_high() -> None:
    assert assess(make_request(parameters={"log_level": "debug"})).tier == "low"
    deploy = assess(make_request(parameters={"version": "1.5.0"}))
    assert deploy.tier == "medium"
    assert "operation class deploy (parameters version) -> low raised to medium" in deploy.reasons
    assert assess(make_request(operation="delete_instance")).tier == "high"


def test_warnings_raise_the_tier_once() -> None:
    assert assess(findings=[warn()]).tier == "medium"
    assert assess(findings=[warn(), warn("stale-assumption")]).tier == "medium"
    info = Finding(code="note", severity="info", message="m")
    assert assess(findings=[info]).tier == "low"


def test_the_agents_hint_raises_but_never_lowers() -> None:
    assert assess(make_request(risk_hint="high")).tier == "high"
    lowered = assess(make_request(risk_hint="low", parameters={"version": "2"}))
    assert lowered.tier == "medium"
    assert "the agent's risk hint low -> stays medium" in lowered.reasons


def test_extra_approvers_and_canary_minimums() -> None:
    policy = make_policy(
        risk_tiers={"low": {"approvals": 1, "canary_units": 2, "canary_bake_seconds": 120}}
    )
    dependency = Finding(code="dependency-change-active", severity="warn", message="m")
    request = make_request(rollout={"canary_units": 1, "canary_bake_seconds": 300})
    bumped = assess(request, findings=[dependency], policy=policy)
    assert bumped.tier == "medium"  # the warning raises low to medium
    assert bumped.required_approvals == 2  # medium's 1 + 1 for the dependency finding

    plain = assess(request, policy=policy)
    assert (plain.canary_units, plain.canary_bake_seconds) == (2, 300)
    tiny = assess(request, units=1, policy=policy)
    assert tiny.canary_units == 1


# --- approvals -----------------------------------------------------------------------------

SRE_TIERS = {"high": {"approvals": 2, "roles": ["sre"]}}
SRE_POLICY = {
    "approvers": {"alice": {"roles": ["sre"]}, "bob": {"roles": ["sre"]}, "carol": {}},
    "risk_tiers": SRE_TIERS,
}


def decide(
    actor: str,
    *,
    verdict: DecisionVerdict = "approve",
    tier_units: int = 21,
    request: ChangeRequest | None = None,
    prior: list[tuple[str, DecisionVerdict]] | None = None,
    policy: Policy | None = None,
) -> tuple[bool, str | None, str]:
    policy = policy or make_policy(**SRE_POLICY)
    request = request or make_request(on_behalf_of="dave")
    judgement = judge_decision(
        actor,
        verdict=verdict,
        policy=policy,
        assessment=assess(request, units=tier_units, policy=policy),
        agent=request.agent,
        prior=prior or [],
    )
    return judgement.counted, judgement.rule, judgement.reason


def test_a_qualified_approver_is_counted() -> None:
    assert decide("alice") == (True, None, "approval by alice counted")
    assert decide("carol", tier_units=1)[0]  # a low tier has no role requirement


def test_refused_approvals() -> None:
    counted, rule, reason = decide("Agent-7 ")
    assert (counted, rule) == (False, "approval.self")
    assert "proposed this change and cannot approve it" in reason

    counted, rule, reason = decide("dave")
    assert (counted, rule) == (False, "approval.on_behalf_of")
    assert "on behalf of dave" in reason

    counted, rule, reason = decide("mallory")
    assert (counted, rule) == (False, "approval.not_an_approver")
    assert reason == "mallory is not an approver; approvers are alice, bob, carol"

    counted, rule, reason = decide("carol")
    assert (counted, rule) == (False, "approval.role")
    assert reason == "a high change needs an approver with role sre; carol holds no roles"

    counted, rule, reason = decide("alice", prior=[("ALICE", "approve")])
    assert (counted, rule) == (False, "approval.duplicate")
    assert "alice already decided (approve)" in reason


def test_rejections() -> None:
    assert decide("agent-7", verdict="reject")[0]  # the agent may withdraw its own change
    assert decide("alice", verdict="reject", prior=[("alice", "approve")])[0]
    assert decide("mallory", verdict="reject")[1] == "approval.not_an_approver"
    assert decide("bob", verdict="reject", prior=[("bob", "reject")])[1] == "approval.duplicate"


def test_without_listed_approvers_anyone_else_may_approve() -> None:
    open_policy = make_policy(risk_tiers=SRE_TIERS)
    counted, rule, reason = decide("zed", policy=open_policy)
    assert (counted, rule) == (True, None)
    assert "role sre not checked: the policy lists no approvers" in reason
    assert decide("agent-7", policy=open_policy)[1] == "approval.self"


def test_quorum_counts_distinct_approvers() -> None:
    high = assess(units=21)
    assert high.required_approvals == 2
    assert not quorum_reached(["alice"], high)
    assert not quorum_reached(["alice", "Alice "], high)
    assert quorum_reached(["alice", "bob"], high)


def test_public_names_are_pinned() -> None:
    assert "check_assumptions" in policy_pkg.__all__
    assert all(hasattr(policy_pkg, name) for name in policy_pkg.__all__)
    assert sorted(policy_pkg.__all__) == sorted(set(policy_pkg.__all__))
