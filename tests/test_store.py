"""The audit store on SQLite and on PostgreSQL: migrations, repositories, idempotency."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pydantic import JsonValue, ValidationError

from changegate.models import (
    ChangeRequest,
    Decision,
    Finding,
    Outcome,
    RiskLevel,
    Stage,
    TimelineEvent,
)
from changegate.store import (
    ChangeRow,
    IncidentRecord,
    KillMode,
    Store,
    active_changes,
    active_kill_switch_for,
    agent_scope,
    changes_count,
    close_incident,
    create_engine_for,
    create_token,
    current_revision,
    database_url,
    fingerprint,
    get_change,
    get_incident,
    get_kill_switches,
    head_revision,
    list_decisions,
    list_events,
    list_findings,
    list_incidents,
    list_refusals,
    list_tokens,
    metadata,
    migrate,
    open_incident,
    open_incident_targets,
    open_store,
    recent_changes,
    record_decision,
    record_events,
    record_findings,
    record_refusal,
    revoke_token,
    set_kill_switch,
    upsert_change,
    verify_token,
)
from tests.support import postgres_schema

T0 = datetime(2025, 11, 22, 9, 0, tzinfo=UTC)
TABLES = {
    "changes",
    "events",
    "findings",
    "decisions",
    "incidents",
    "refusals",
    "kill_switches",
    "tokens",
    "web_sessions",
    "breaker_trips",
}


def make_request(
    *,
    agent_id: str = "agent-7",
    service: str = "checkout",
    parameters: dict[str, JsonValue] | None = None,
) -> ChangeRequest:
    """A valid request to set config on one fleet service."""
    return ChangeRequest.model_validate(
        {
            "agent": {"agent_id": agent_id},
            "intent": "Raise the connection pool so checkout stops queueing at peak.",
            "target": {"kind": "fleet", "selector": {"service": service}},
            "change": {"operation": "set_config", "parameters": parameters or {"pool_size": 24}},
            "assumptions": {"unit_count": 4},
        }
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """An empty database: a SQLite file path, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield os.path.join(tmp_path, "data", "audit.db")
        return
    with postgres_schema("cg") as scoped:
        yield scoped.render_as_string(hide_password=False)


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with open_store(url) as opened:
        yield opened


def _change(
    store: Store,
    change_id: str,
    *,
    at: datetime = T0,
    agent_id: str = "agent-7",
    service: str = "checkout",
) -> None:
    with store.session() as session:
        upsert_change(
            session=session,
            change_id=change_id,
            request=make_request(agent_id=agent_id, service=service),
            stage=Stage.RECON,
            at=at,
        )


def _event(seq: int, kind: str = "stage") -> TimelineEvent:
    return TimelineEvent(
        at=T0 + timedelta(seconds=seq), stage=Stage.RECON, kind=kind, message=f"event {seq}"
    )


def test_migrate_is_idempotent_and_matches_the_tables(url: str) -> None:
    migrate(url)
    migrate(url)
    engine = create_engine_for(url)
    try:
        assert current_revision(engine) == head_revision() == "0004"
        with engine.connect() as connection:
            names = set(sa.inspect(connection).get_table_names())
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
        # On PostgreSQL the version table lives in the test's own schema, with the rest.
        assert names == TABLES | {"alembic_version"}
    finally:
        engine.dispose()


def _migrate_in_child(url: str, start: Barrier, results: Queue[str]) -> None:
    start.wait()
    try:
        migrate(url)
    except Exception as exc:
        results.put(repr(exc))
    else:
        results.put("ok")


def test_concurrent_migrations_run_once(url: str) -> None:
    # Workers starting together each migrate; one creates the schema, the others wait for it.
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(4), context.Queue()
    children = [
        context.Process(target=_migrate_in_child, args=(url, start, results)) for _ in range(4)
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join()
    results.close()
    assert outcomes == ["ok"] * 4


def test_sqlite_uses_wal_and_foreign_keys(tmp_path: os.PathLike[str]) -> None:
    with open_store(os.path.join(tmp_path, "audit.db")) as store, store.session() as session:
        pragma = session.connection().exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert pragma("PRAGMA foreign_keys").scalar() == 1


def test_database_url_reads_paths_and_bare_postgres_urls() -> None:
    assert database_url("audit.db").drivername == "sqlite"
    assert database_url("audit.db").database == os.path.abspath("audit.db")
    assert database_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert database_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"


def test_upsert_change_moves_forward_only(store: Store) -> None:
    request = make_request(parameters={"pool_size": 30})
    writes: list[tuple[Stage, datetime, RiskLevel | None, Outcome | None]] = [
        (Stage.RECON, T0, None, None),
        (Stage.SUMMARY, T0 + timedelta(minutes=1), "high", None),
        (Stage.VALIDATE, T0 + timedelta(seconds=30), "low", None),  # stale: ignored
        (Stage.ENDED, T0 + timedelta(minutes=5), None, Outcome.ROLLED_BACK),
        (Stage.ENDED, T0 + timedelta(minutes=6), None, None),  # keeps outcome and risk
    ]
    with store.session() as session:
        for stage, at, risk, outcome in writes:
            upsert_change(
                session=session,
                change_id="c-1",
                request=request,
                stage=stage,
                risk=risk,
                outcome=outcome,
                at=at,
            )
    with store.session() as session:
        row = get_change(session=session, change_id="c-1")
        assert get_change(session=session, change_id="c-404") is None
        assert changes_count(session=session) == 1
    assert row is not None
    assert (row.agent_id, row.target_label, row.operation) == (
        "agent-7",
        "fleet:service=checkout",
        "set_config",
    )
    assert row.fingerprint == fingerprint(request)
    assert row.request == request.model_dump(mode="json")
    assert (row.stage, row.outcome, row.risk) == ("ENDED", "ROLLED_BACK", "high")
    assert row.submitted_at == T0
    assert row.submitted_at.tzinfo is not None
    assert row.updated_at == T0 + timedelta(minutes=6)
    assert row.ended_at == T0 + timedelta(minutes=5)


def test_naive_timestamps_are_refused(store: Store) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), store.session() as s:
        upsert_change(session=s, change_id="c-1", request=make_request(), stage=Stage.RECON, at=T0)
        upsert_change(
            session=s,
            change_id="c-2",
            request=make_request(),
            stage=Stage.RECON,
            at=datetime(2025, 1, 1),
        )
    with store.session() as session:
        assert changes_count(session=session) == 0, "the failed session rolled back"


def test_history_is_written_once_per_seq(store: Store) -> None:
    _change(store, "c-1")
    findings = [
        Finding(
            code="stale", severity="block", message="m", path="unit_count", expected=4, actual=6
        ),
        Finding(code="freeze", severity="warn", message="w"),
    ]
    for _ in range(2):
        with store.session() as session:
            record_events(session=session, change_id="c-1", events=[(0, _event(0)), (1, _event(1))])
            record_events(session=session, change_id="c-1", events=[])
            record_findings(session=session, change_id="c-1", findings=list(enumerate(findings)))
            record_decision(
                session=session,
                change_id="c-1",
                seq=0,
                decision=Decision(actor="agent-7", reason="mine"),
                verdict="refused",
                counted=False,
                at=T0,
            )
    with store.session() as session:
        # A retry that carries an earlier event plus a new one adds only the new one.
        record_events(
            session=session, change_id="c-1", events=[(1, _event(1, "other")), (2, _event(2))]
        )
        record_decision(
            session=session,
            change_id="c-1",
            seq=1,
            decision=Decision(actor="alice"),
            verdict="approve",
            counted=True,
            at=T0 + timedelta(minutes=1),
        )
    with store.session() as session:
        events = list_events(session=session, change_id="c-1")
        stored = list_findings(session=session, change_id="c-1")
        decisions = list_decisions(session=session, change_id="c-1")
    assert [(e.seq, e.kind, e.at) for e in events] == [
        (0, "stage", T0),
        (1, "stage", T0 + timedelta(seconds=1)),
        (2, "stage", T0 + timedelta(seconds=2)),
    ]
    assert [(f.code, f.expected, f.actual, f.path) for f in stored] == [
        ("stale", 4, 6, "unit_count"),
        ("freeze", None, None, None),
    ]
    assert [(d.actor, d.verdict, d.counted) for d in decisions] == [
        ("agent-7", "refused", False),
        ("alice", "approve", True),
    ]


def test_history_needs_its_change(store: Store) -> None:
    with pytest.raises(sa.exc.IntegrityError), store.session() as session:
        record_events(session=session, change_id="c-unknown", events=[(0, _event(0))])


def _incident(
    change_id: str, *, title: str = "canary failed", target: str = "fleet:a"
) -> IncidentRecord:
    return IncidentRecord(
        change_id=change_id,
        category="health-regression",
        severity="high",
        opened_at=T0,
        target_label=target,
        agent_id="agent-7",
        title=title,
        review_markdown="## What happened\n",
        data={"units": ["a-0"]},
    )


def test_incidents_open_once_and_close(store: Store) -> None:
    _change(store, "c-1")
    _change(store, "c-2")
    with store.session() as session:
        first = open_incident(session=session, incident=_incident("c-1"))
        again = open_incident(session=session, incident=_incident("c-1", title="retry"))
        open_incident(session=session, incident=_incident("c-2", target="fleet:b"))
    assert first.incident_id == "inc-c-1"
    with pytest.raises(ValidationError, match="extra"):
        IncidentRecord.model_validate({**first.model_dump(), "owner": "bob"})
    assert again == first, "a retried open returns the incident already stored"
    with store.session() as session:
        assert len(list_incidents(session=session)) == 2
        assert open_incident_targets(session=session) == {"fleet:a", "fleet:b"}
        closed = close_incident(session=session, incident_id="inc-c-1", at=T0 + timedelta(hours=1))
        close_incident(session=session, incident_id="inc-c-1", at=T0 + timedelta(hours=2))
        assert close_incident(session=session, incident_id="inc-x", at=T0) is None
    assert closed is not None
    assert closed.closed_at == T0 + timedelta(hours=1)
    with store.session() as session:
        stored = get_incident(session=session, incident_id="inc-c-1")
        assert get_incident(session=session, incident_id="inc-x") is None
        open_ones = list_incidents(session=session, open_only=True)
        on_a = list_incidents(session=session, target="fleet:a")
        assert open_incident_targets(session=session) == {"fleet:b"}
    assert stored is not None
    assert (stored.title, stored.data, stored.closed_at) == (
        "canary failed",
        {"units": ["a-0"]},
        T0 + timedelta(hours=1),
    )
    assert [i.incident_id for i in open_ones] == ["inc-c-2"]
    assert [i.incident_id for i in on_a] == ["inc-c-1"]


def test_refusals_are_recorded_once(store: Store) -> None:
    with store.session() as session:
        for _ in range(2):
            record_refusal(
                session=session,
                request=make_request(),
                rule="rate-limit",
                reason="5 changes in the last hour",
                would_pass="wait until 10:00",
                at=T0,
            )
        record_refusal(
            session=session,
            request=make_request(agent_id="agent-9"),
            rule="scope",
            reason="not allowed",
            at=T0 + timedelta(minutes=1),
        )
    with store.session() as session:
        every = list_refusals(session=session)
        mine = list_refusals(session=session, agent_id="agent-7")
        later = list_refusals(session=session, since=T0 + timedelta(seconds=1))
    assert [r.rule for r in every] == ["scope", "rate-limit"]
    assert [(r.rule, r.would_pass, r.target_label) for r in mine] == [
        ("rate-limit", "wait until 10:00", "fleet:service=checkout")
    ]
    assert mine[0].fingerprint == fingerprint(make_request())
    assert [r.agent_id for r in later] == ["agent-9"]


def test_kill_switches_global_first_and_release(store: Store) -> None:
    def engage(scope: str, *, engaged: bool = True, mode: KillMode = "pause") -> None:
        with store.session() as session:
            set_kill_switch(
                session=session,
                scope=scope,
                mode=mode,
                engaged=engaged,
                actor="ops",
                reason="incident",
                at=T0,
            )

    def active(agent_id: str) -> tuple[str, str] | None:
        with store.session() as session:
            switch = active_kill_switch_for(session=session, agent_id=agent_id)
        return None if switch is None else (switch.scope, switch.mode)

    assert active("agent-7") is None
    engage(agent_scope("agent-7"), mode="abort")
    assert active("agent-7") == ("agent:agent-7", "abort")
    assert active("agent-8") is None
    engage("global")
    engage("global")
    assert active("agent-7") == ("global", "pause")
    assert active("agent-8") == ("global", "pause")
    engage("global", engaged=False)
    assert active("agent-7") == ("agent:agent-7", "abort")
    assert active("agent-8") is None
    with store.session() as session:
        switches = get_kill_switches(session=session)
    assert [(s.scope, s.engaged, s.actor) for s in switches] == [
        ("global", False, "ops"),
        ("agent:agent-7", True, "ops"),
    ]
    with pytest.raises(ValueError, match="neither 'global'"):
        engage("agent:")


def test_recent_and_active_changes_filter(store: Store) -> None:
    _change(store, "c-1", at=T0, agent_id="agent-7", service="a")
    _change(store, "c-2", at=T0 + timedelta(minutes=1), agent_id="agent-7", service="b")
    _change(store, "c-3", at=T0 + timedelta(minutes=2), agent_id="agent-9", service="a")
    with store.session() as session:
        upsert_change(
            session=session,
            change_id="c-1",
            request=make_request(agent_id="agent-7", service="a"),
            stage=Stage.ENDED,
            outcome=Outcome.DONE,
            at=T0 + timedelta(minutes=3),
        )
    # The same instant in another zone must compare equal to the UTC one.
    since = (T0 + timedelta(minutes=1)).astimezone(timezone(timedelta(hours=2)))

    def ids(rows: Sequence[ChangeRow]) -> list[str]:
        return [row.change_id for row in rows]

    with store.session() as session:
        assert ids(recent_changes(session=session)) == ["c-3", "c-2", "c-1"]
        assert ids(recent_changes(session=session, agent_id="agent-7")) == ["c-2", "c-1"]
        assert ids(recent_changes(session=session, target_label="fleet:service=a")) == [
            "c-3",
            "c-1",
        ]
        assert ids(recent_changes(session=session, since=since)) == ["c-3", "c-2"]
        assert ids(recent_changes(session=session, limit=1)) == ["c-3"]
        same = fingerprint(make_request(service="a"))
        assert ids(recent_changes(session=session, fingerprint=same)) == ["c-3", "c-1"]
        assert ids(active_changes(session=session)) == ["c-2", "c-3"]
        assert ids(active_changes(session=session, target_label="fleet:service=a")) == ["c-3"]
        assert changes_count(session=session, agent_id="agent-7") == 2
        assert changes_count(session=session, agent_id="agent-7", since=since) == 1


def test_tokens_store_only_a_hash(store: Store) -> None:
    with store.session() as session:
        token = create_token(
            session=session, name="ci-agent", role="agent", agent_id="agent-7", roles=["approver"]
        )
        other = create_token(session=session, name="alice", role="approver")
    with store.session() as session:
        found = verify_token(session=session, token=token)
        assert verify_token(session=session, token=token + "x") is None
        assert found is not None
        assert (found.name, found.role, found.agent_id, found.roles) == (
            "ci-agent",
            "agent",
            "agent-7",
            ["agent", "approver"],
        )
        rows = session.connection().execute(sa.text("SELECT * FROM tokens")).all()
    stored = [str(value) for row in rows for value in row]
    assert len(rows) == 2
    assert not any(token in value or other in value for value in stored)
    with store.session() as session:
        assert revoke_token(session=session, token_id=found.token_id)
        assert not revoke_token(session=session, token_id="tok-missing")
    with store.session() as session:
        assert verify_token(session=session, token=token) is None
        assert verify_token(session=session, token=other) is not None
        assert [(t.name, t.revoked) for t in list_tokens(session=session)] == [
            ("ci-agent", True),
            ("alice", False),
        ]
        with pytest.raises(ValueError, match="no agent_id"):
            create_token(session=session, name="bad", role="agent")


def test_fingerprint_is_stable_and_specific() -> None:
    base = make_request(parameters={"pool_size": 24, "mode": {"a": 1, "b": [1, 2]}})
    assert fingerprint(base) == fingerprint(
        make_request(parameters={"mode": {"b": [1, 2], "a": 1}, "pool_size": 24.0})
    )
    reworded = base.model_copy(update={"intent": "Another reason, same change entirely."})
    assert fingerprint(reworded) == fingerprint(base)
    assert len(fingerprint(base)) == 64
    assert fingerprint(
        make_request(parameters={"pool_size": 25, "mode": {"a": 1, "b": [1, 2]}})
    ) != (fingerprint(base))
    assert fingerprint(make_request(service="other")) != fingerprint(make_request())
