"""Admission under concurrency: the database lock keeps one active change per target and the
rate limits true when submissions race, from threads of one process or from separate ones.

Submitters meet at a barrier before every round, so each round's submissions read the store
at the same moment; without the lock most rounds admitted two changes on one target.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import sqlite3
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import pytest
import sqlalchemy as sa

from changegate.admission import AdmissionRefused, Gate
from changegate.models import ChangeRequest
from changegate.policy import AgentScope, Policy
from changegate.store import (
    Store,
    active_changes,
    list_refusals,
    locked_session,
    open_store,
)
from tests.support import postgres_schema

PAIRS = 20
RESULT_TIMEOUT = 120.0


class _Barrier(Protocol):
    def wait(self, timeout: float | None = None) -> int: ...


class _Results(Protocol):
    def put(self, obj: tuple[str, str]) -> None: ...


@dataclass(frozen=True)
class Job:
    """One submission a submitter makes in its round."""

    change_id: str
    request: ChangeRequest


def make_request(*, service: str, agent_id: str = "agent-7") -> ChangeRequest:
    """A valid request to set config on one fleet service."""
    return ChangeRequest.model_validate(
        {
            "agent": {"agent_id": agent_id},
            "intent": "Raise the connection pool so the service stops queueing at peak.",
            "target": {"kind": "fleet", "selector": {"service": service}},
            "change": {"operation": "set_config", "parameters": {"pool_size": 24}},
            "assumptions": {"unit_count": 4},
        }
    )


def make_policy(*, max_in_flight: int | None = None) -> Policy:
    """Any agent may set config on the fleet; one change per target, as by default."""
    scope = AgentScope(targets=["fleet:*"], operations=["set_config"], max_in_flight=max_in_flight)
    return Policy(agents={"*": scope}, one_change_per_target=True)


def submit_rounds(gate: Gate, rounds: Sequence[Job], *, start: _Barrier, results: _Results) -> None:
    """Submit one job per round, all submitters starting each round together.

    Reports `(change_id, "admitted" | refusing rule | repr of an error)` for every job.
    """
    for job in rounds:
        start.wait(timeout=RESULT_TIMEOUT)
        try:
            gate.admit(job.request, change_id=job.change_id, now=datetime.now(UTC))
        except AdmissionRefused as refused:
            results.put((job.change_id, refused.rule))
        except Exception as exc:
            results.put((job.change_id, repr(exc)))
        else:
            results.put((job.change_id, "admitted"))


def _submit_in_child(
    url: str, policy: Policy, rounds: Sequence[Job], start: _Barrier, results: _Results
) -> None:
    # A process of its own, with its own engine and gate, as a second API server would be.
    with open_store(url) as store:
        submit_rounds(Gate(store=store, policy=policy), rounds, start=start, results=results)


def race(
    url: str, policy: Policy, schedules: Sequence[Sequence[Job]], *, mode: str
) -> dict[str, str]:
    """Run one submitter per schedule, in processes or threads; what each job came to."""
    total = sum(len(rounds) for rounds in schedules)
    if mode == "processes":
        context = multiprocessing.get_context("spawn")
        start, results = context.Barrier(len(schedules)), context.Queue()
        children = [
            context.Process(target=_submit_in_child, args=(url, policy, rounds, start, results))
            for rounds in schedules
        ]
        for child in children:
            child.start()
        try:
            outcomes = [results.get(timeout=RESULT_TIMEOUT) for _ in range(total)]
        finally:
            for child in children:
                child.join(timeout=RESULT_TIMEOUT)
            results.close()
        assert [child.exitcode for child in children] == [0] * len(children)
        return dict(outcomes)
    # Threads share one gate and its connection pool, as the API server's worker threads do.
    shared: queue.Queue[tuple[str, str]] = queue.Queue()
    barrier = threading.Barrier(len(schedules))
    with open_store(url) as store:
        gate = Gate(store=store, policy=policy)
        threads = [
            threading.Thread(
                target=submit_rounds,
                args=(gate, rounds),
                kwargs={"start": barrier, "results": shared},
            )
            for rounds in schedules
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=RESULT_TIMEOUT)
    return dict(shared.get_nowait() for _ in range(total))


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """A migrated, empty store: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        location = os.path.join(tmp_path, "data", "audit.db")
        open_store(location).close()
        yield location
        return
    with postgres_schema("cg_race") as scoped:
        location = scoped.render_as_string(hide_password=False)
        open_store(location).close()
        yield location


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with open_store(url) as opened:
        yield opened


@pytest.mark.parametrize("mode", ["processes", "threads"])
def test_one_of_each_racing_pair_is_admitted(url: str, mode: str) -> None:
    # Round i: both submitters propose a change on service-i at the same moment.
    schedules = [
        [Job(f"chg-{i:02d}-{side}", make_request(service=f"service-{i}")) for i in range(PAIRS)]
        for side in ("a", "b")
    ]
    outcomes = race(url, make_policy(), schedules, mode=mode)

    assert len(outcomes) == 2 * PAIRS
    for i in range(PAIRS):
        pair = sorted(outcomes[f"chg-{i:02d}-{side}"] for side in ("a", "b"))
        assert pair == ["admitted", "one_active_change"], f"pair {i}: {pair}"
    with open_store(url) as store, store.session() as session:
        held = Counter(row.target_label for row in active_changes(session=session))
        refusals = list_refusals(session=session)
    assert held == {f"fleet:service=service-{i}": 1 for i in range(PAIRS)}
    assert [r.rule for r in refusals] == ["one_active_change"] * PAIRS


def test_racing_submissions_stay_within_max_in_flight(url: str) -> None:
    # Round r: a fresh agent allowed two changes in flight sends three at once, one per target.
    limit, submitters, rounds = 2, 3, 8
    schedules = [
        [
            Job(
                f"chg-r{r}-{s}",
                make_request(service=f"service-{r}-{s}", agent_id=f"agent-r{r}"),
            )
            for r in range(rounds)
        ]
        for s in range(submitters)
    ]
    outcomes = race(url, make_policy(max_in_flight=limit), schedules, mode="processes")

    for r in range(rounds):
        got = Counter(outcomes[f"chg-r{r}-{s}"] for s in range(submitters))
        assert got == {"admitted": limit, "rate.in_flight": submitters - limit}, f"round {r}"
    with open_store(url) as store, store.session() as session:
        running = Counter(row.agent_id for row in active_changes(session=session))
    assert running == {f"agent-r{r}": limit for r in range(rounds)}


def _lock_is_free(store: Store, key: int, database: str) -> bool:
    """Whether another connection could take the lock right now, without waiting."""
    if database == "sqlite":
        path = store.engine.url.database
        assert path is not None
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
            return False
        else:
            other.execute("ROLLBACK")
            return True
        finally:
            other.close()
    with store.engine.connect() as connection:
        taken = connection.execute(sa.select(sa.func.pg_try_advisory_xact_lock(key))).scalar()
        connection.rollback()
        return bool(taken)


def test_locked_session_holds_the_lock_until_it_ends(store: Store) -> None:
    # A key of this test's own: other test runs on the database may be admitting right now.
    key = uuid.uuid4().int >> 65
    database = store.engine.dialect.name
    with locked_session(store, key=key) as session:
        assert not _lock_is_free(store, key, database)
        # Plain sessions still read while the lock is held (SQLite's WAL lets readers in).
        with store.session() as reader:
            assert active_changes(session=reader) == []
        assert session.connection().exec_driver_sql("SELECT 1").scalar() == 1
    assert _lock_is_free(store, key, database)

    with pytest.raises(RuntimeError), locked_session(store, key=key):
        raise RuntimeError("the lock goes with the rolled-back transaction")
    assert _lock_is_free(store, key, database)
