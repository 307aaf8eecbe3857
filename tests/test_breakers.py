"""Circuit breakers judged by the admission gate and on recorded outcomes, against the real
store on SQLite and on PostgreSQL: which trigger fires, with what evidence, what it does."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from changegate.admission import AdmissionRefused, Gate
from changegate.admission.breakers import trip_breaker
from changegate.models import Outcome, Stage, TimelineEvent
from changegate.policy import Policy, PolicyError, parse_policy
from changegate.policy.breakers import OUTCOME_TRIGGERS
from changegate.store import (
    BREAKER_ACTOR,
    Store,
    get_kill_switches,
    list_incidents,
    list_refusals,
    list_trips,
    locked_session,
    open_store,
    record_events,
    release_breakers,
    upsert_change,
)
from tests.support import make_request, postgres_schema

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
_DAY = timedelta(days=1)
SCOPE = {"targets": ["fleet:service=search"], "operations": ["set_config"]}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[Store]:
    if request.param == "sqlite":
        with open_store(os.path.join(tmp_path, "audit.db")) as opened:
            yield opened
        return
    with postgres_schema("cgbrk") as scoped, open_store(scoped.render_as_string(False)) as opened:
        yield opened


def policy(breakers: dict[str, object], **scope: object) -> Policy:
    return Policy.model_validate({"agents": {"*": {**SCOPE, **scope}}, "breakers": {"*": breakers}})


def submit(
    gate: Gate,
    at: datetime,
    *,
    service: str = "search",
    agent_id: str = "agent-b",
    change_id: str | None = None,
    parameters: dict[str, object] | None = None,
) -> str:
    change_id = change_id or f"chg-{service}-{at.timestamp():.0f}"
    gate.admit(
        make_request(service=service, agent_id=agent_id, parameters=parameters),  # type: ignore[arg-type]
        change_id=change_id,
        now=at,
    )
    return change_id


def refused(gate: Gate, at: datetime, **kwargs: object) -> AdmissionRefused:
    with pytest.raises(AdmissionRefused) as caught:
        submit(gate, at, **kwargs)  # type: ignore[arg-type]
    return caught.value


def switch(store: Store, agent_id: str) -> tuple[bool, str, str] | None:
    with store.session() as session:
        for s in get_kill_switches(session=session):
            if s.scope == f"agent:{agent_id}":
                return s.engaged, s.mode, s.actor
    return None


def end(
    store: Store,
    change_id: str,
    outcome: Outcome,
    at: datetime,
    *,
    units: int = 1,
    agent_id: str = "agent-b",
    service: str = "search",
) -> None:
    """A change of the agent that ended with `outcome` at `at`, having applied `units`."""
    with store.session() as session:
        upsert_change(
            session=session,
            change_id=change_id,
            request=make_request(service=service, agent_id=agent_id),
            stage=Stage.RECON,
            at=at - timedelta(seconds=30),
        )
        upsert_change(
            session=session,
            change_id=change_id,
            request=make_request(service=service, agent_id=agent_id),
            stage=Stage.ENDED,
            outcome=outcome,
            at=at,
        )
        events = [
            TimelineEvent(at=at, stage=Stage.ROLLOUT, kind="applied", message=f"u{i}")
            for i in range(units)
        ]
        record_events(session=session, change_id=change_id, events=list(enumerate(events)))


def judge_outcomes(store: Store, rules: Policy, at: datetime, *, trip_id: str) -> object:
    with locked_session(store) as session:
        return trip_breaker(
            session=session,
            policy=rules,
            agent_id="agent-b",
            triggers=OUTCOME_TRIGGERS,
            now=at,
            trip_id=trip_id,
        )


# ---- the policy section ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{scope_refusals: {count: 3}}", "breakers.*: scope_refusals: needs window_minutes"),
        (
            "{rollbacks_in_a_row: {count: 2, window_minutes: 5}}",
            "rollbacks_in_a_row: takes no window_minutes",
        ),
        ("{scope_refusal: {count: 3}}", "did you mean 'scope_refusals'?"),
        (
            "{failed_changes: {count: 2, window_minutes: 5, responses: [abort, pause]}}",
            "must grow no milder",
        ),
        ("{units_per_day: {count: 0}}", "breakers.*.units_per_day.count"),
        ("{changes_per_day: {count: 2, responses: [stop]}}", "'throttle', 'pause' or 'abort'"),
    ],
)
def test_an_invalid_breakers_section_is_refused_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(f'breakers: {{"*": {text}}}')
    assert message in str(caught.value)


def test_the_default_policy_pauses_an_agent_after_three_scope_refusals_in_ten_minutes() -> None:
    from changegate.policy import load_policy

    breakers = load_policy(None).breakers_for("any-agent")
    assert breakers is not None and breakers.scope_refusals is not None
    assert breakers.scope_refusals.count == 3
    assert breakers.scope_refusals.window_minutes == 10
    assert breakers.scope_refusals.responses == ["pause"]


# ---- admission-time triggers ----------------------------------------------------------------


def test_scope_refusals_pause_the_agent_with_the_refusals_as_evidence(store: Store) -> None:
    gate = Gate(store=store, policy=policy({"scope_refusals": {"count": 3, "window_minutes": 10}}))
    first = refused(gate, T0, service="checkout")
    assert first.rule == "scope.target" and first.trip is None
    refused(gate, T0 + timedelta(minutes=1), service="payments")
    third = refused(gate, T0 + timedelta(minutes=2), service="checkout")

    assert third.rule == "scope.target"
    assert third.trip is not None and third.trip.breaker == "scope_refusals"
    assert "tripped breaker scope_refusals" in third.reason
    assert switch(store, "agent-b") == (True, "pause", BREAKER_ACTOR)
    with store.session() as session:
        [trip] = list_trips(session=session, agent_id="agent-b")
        refusals = list_refusals(session=session, agent_id="agent-b")
        [incident] = list_incidents(session=session, open_only=True)
    assert trip.response == "pause"
    assert sorted(e["refusal_id"] for e in trip.evidence) == sorted(r.id for r in refusals)
    assert {e["rule"] for e in trip.evidence} == {"scope.target"}
    assert incident.category == "agent-guardrail-breach"
    assert incident.incident_id == trip.incident_id
    assert incident.target_label == "agent:agent-b"
    assert "scope_refusals" in incident.review_markdown

    # An in-scope change is now refused by the breaker; another agent is not.
    held = refused(gate, T0 + timedelta(minutes=3))
    assert held.rule == "breaker.scope_refusals"
    assert "a person releases the breaker" in held.would_pass
    submit(gate, T0 + timedelta(minutes=3), agent_id="agent-other")


def test_refusals_outside_the_window_do_not_trip(store: Store) -> None:
    gate = Gate(store=store, policy=policy({"scope_refusals": {"count": 3, "window_minutes": 10}}))
    for minute in (0, 6, 12, 18):
        assert refused(gate, T0 + timedelta(minutes=minute), service="checkout").trip is None
    submit(gate, T0 + timedelta(minutes=19))


def test_loop_refusals_trip_their_breaker(store: Store) -> None:
    rules = policy({"loop_refusals": {"count": 2, "window_minutes": 30}}).model_copy(
        update={"loop_detection": Policy().loop_detection.model_copy(update={"max_repeats": 1})}
    )
    gate = Gate(store=store, policy=rules)
    end(store, "chg-failed", Outcome.ROLLED_BACK, T0)
    assert refused(gate, T0 + timedelta(minutes=1)).rule == "loop"
    second = refused(gate, T0 + timedelta(minutes=2))
    assert second.rule == "loop" and second.trip is not None
    assert second.trip.breaker == "loop_refusals"
    assert [e["rule"] for e in second.trip.evidence] == ["loop", "loop"]
    assert refused(gate, T0 + timedelta(minutes=3), service="search").rule == (
        "breaker.loop_refusals"
    )


def test_rate_refusals_throttle_first_then_pause(store: Store) -> None:
    rules = policy(
        {
            "rate_refusals": {"count": 2, "window_minutes": 10, "responses": ["throttle", "pause"]},
            "throttle": {"changes_per_hour": 1},
        },
        changes_per_hour=1,
        targets=["fleet:*"],
    )
    gate = Gate(store=store, policy=rules)
    submit(gate, T0, service="s0")
    assert refused(gate, T0 + timedelta(minutes=1), service="s1").rule == "rate.per_hour"
    tripping = refused(gate, T0 + timedelta(minutes=2), service="s2")
    assert tripping.trip is not None and tripping.trip.response == "throttle"
    assert switch(store, "agent-b") is None  # a throttle holds nothing

    # Throttled: the next refusal is the breaker's 429 once the lower rate is used up.
    gate.policy = rules.model_copy(
        update={"agents": {"*": rules.agents["*"].model_copy(update={"changes_per_hour": 100})}}
    )
    submit(gate, T0 + timedelta(minutes=3), service="s3")
    throttled = refused(gate, T0 + timedelta(minutes=4), service="s4")
    assert throttled.rule == "rate.breaker.rate_refusals"
    assert throttled.retry_after is not None and 0 < throttled.retry_after <= 3600

    assert throttled.trip is None
    # The throttle's refusals count too: one more escalates to the next response, pause.
    escalated = refused(gate, T0 + timedelta(minutes=5), service="s5")
    assert escalated.trip is not None and escalated.trip.response == "pause"
    assert switch(store, "agent-b") == (True, "pause", BREAKER_ACTOR)
    assert refused(gate, T0 + timedelta(minutes=6), service="s6").rule == "breaker.rate_refusals"


def test_the_changes_per_day_budget_refuses_the_change_over_it(store: Store) -> None:
    rules = policy({"changes_per_day": {"count": 2}}, targets=["fleet:*"])
    gate = Gate(store=store, policy=rules)
    first = submit(gate, T0, service="s1")
    end(store, "chg-ended", Outcome.DONE, T0 + timedelta(hours=1), service="s2")
    over = refused(gate, T0 + timedelta(hours=2), service="s3")
    assert over.rule == "breaker.changes_per_day"
    assert over.trip is not None
    assert {e["change_id"] for e in over.trip.evidence} == {first, "chg-ended"}
    with store.session() as session:
        assert [r.rule for r in list_refusals(session=session, agent_id="agent-b")] == [
            "breaker.changes_per_day"
        ]


# ---- outcome triggers -----------------------------------------------------------------------


def test_rollbacks_in_a_row_count_only_an_unbroken_streak(store: Store) -> None:
    rules = policy({"rollbacks_in_a_row": {"count": 2}})
    end(store, "chg-1", Outcome.ROLLED_BACK, T0)
    end(store, "chg-2", Outcome.DONE, T0 + timedelta(minutes=1))
    end(store, "chg-3", Outcome.ROLLED_BACK, T0 + timedelta(minutes=2))
    end(store, "chg-4", Outcome.REJECTED, T0 + timedelta(minutes=3), units=0)
    assert judge_outcomes(store, rules, T0 + timedelta(minutes=4), trip_id="brk-a") is None
    end(store, "chg-5", Outcome.ROLLBACK_FAILED, T0 + timedelta(minutes=5))
    trip = judge_outcomes(store, rules, T0 + timedelta(minutes=6), trip_id="brk-b")
    assert trip is not None
    assert [e["change_id"] for e in trip.evidence] == ["chg-3", "chg-5"]  # type: ignore[attr-defined]
    assert switch(store, "agent-b") == (True, "pause", BREAKER_ACTOR)


def test_failed_changes_within_the_window_trip(store: Store) -> None:
    rules = policy({"failed_changes": {"count": 2, "window_minutes": 30}})
    end(store, "chg-old", Outcome.ROLLED_BACK, T0)
    end(store, "chg-new", Outcome.ROLLED_BACK, T0 + timedelta(minutes=40))
    assert judge_outcomes(store, rules, T0 + timedelta(minutes=41), trip_id="brk-a") is None
    end(store, "chg-newer", Outcome.ROLLBACK_FAILED, T0 + timedelta(minutes=50))
    trip = judge_outcomes(store, rules, T0 + timedelta(minutes=51), trip_id="brk-b")
    assert trip is not None
    assert [e["change_id"] for e in trip.evidence] == ["chg-new", "chg-newer"]  # type: ignore[attr-defined]


def test_units_per_day_sum_the_applied_units(store: Store) -> None:
    rules = policy({"units_per_day": {"count": 5, "responses": ["abort"]}})
    end(store, "chg-1", Outcome.DONE, T0, units=2)
    end(store, "chg-2", Outcome.DONE, T0 + timedelta(hours=1), units=2)
    assert judge_outcomes(store, rules, T0 + timedelta(hours=2), trip_id="brk-a") is None
    end(store, "chg-3", Outcome.ROLLED_BACK, T0 + timedelta(hours=3), units=1)
    trip = judge_outcomes(store, rules, T0 + timedelta(hours=4), trip_id="brk-b")
    assert trip is not None and trip.response == "abort"  # type: ignore[attr-defined]
    assert switch(store, "agent-b") == (True, "abort", BREAKER_ACTOR)
    with store.session() as session:
        [incident] = list_incidents(session=session)
    assert incident.severity == "SEV2"


def test_a_release_is_recorded_and_old_evidence_does_not_trip_again(store: Store) -> None:
    rules = policy({"rollbacks_in_a_row": {"count": 1, "responses": ["pause", "abort"]}})
    end(store, "chg-1", Outcome.ROLLED_BACK, T0)
    assert judge_outcomes(store, rules, T0 + timedelta(minutes=1), trip_id="brk-1") is not None
    released_at = T0 + timedelta(minutes=2)
    with store.session() as session:
        [row] = release_breakers(
            session=session, agent_id="agent-b", actor="alice", reason="fixed", at=released_at
        )
    assert (row.released_by, row.release_reason, row.released_at) == ("alice", "fixed", released_at)
    assert judge_outcomes(store, rules, T0 + timedelta(minutes=3), trip_id="brk-2") is None
    # Offending again within a day is answered by the next response: abort.
    end(store, "chg-2", Outcome.ROLLED_BACK, T0 + timedelta(minutes=4))
    again = judge_outcomes(store, rules, T0 + timedelta(minutes=5), trip_id="brk-3")
    assert again is not None and again.response == "abort"  # type: ignore[attr-defined]
    assert switch(store, "agent-b") == (True, "abort", BREAKER_ACTOR)
    with store.session() as session:
        release_breakers(
            session=session, agent_id="agent-b", actor="alice", reason="ok", at=T0 + _DAY
        )
    # A day later the graduation has started over.
    end(store, "chg-3", Outcome.ROLLED_BACK, T0 + _DAY + timedelta(minutes=10))
    later = judge_outcomes(store, rules, T0 + _DAY + timedelta(minutes=11), trip_id="brk-4")
    assert later is not None and later.response == "pause"  # type: ignore[attr-defined]


def test_the_same_trip_id_is_stored_once(store: Store) -> None:
    rules = policy({"rollbacks_in_a_row": {"count": 1}})
    end(store, "chg-1", Outcome.ROLLED_BACK, T0)
    assert judge_outcomes(store, rules, T0 + timedelta(minutes=1), trip_id="brk-x") is not None
    with store.session() as session:
        assert len(list_trips(session=session)) == 1
        assert len(list_incidents(session=session)) == 1
