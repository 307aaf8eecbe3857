"""Faults injected into real processes on loopback, and how each change ends.

Every case checks the end state, changegate's writes per unit (from the fleet's write log:
each unit applied exactly once, reverted at most once), that the target is free again (the
store's row has the outcome and a new change on the target is admitted), and that the audit
record is complete (the store holds one event per timeline event). The time from the fault
clearing to the outcome is printed (`-s`) and recorded as a junit property.

1. the audit store (PostgreSQL, behind a proxy) cut for 60 s mid-canary;
2. the target (the fleet, behind a proxy) down for 160 s during VERIFY and during a
   rollback (both at once: they are independent, and the suite stays within its budget);
3. the Temporal dev server SIGKILLed mid-bake and started again on its file;
4. a worker process SIGKILLed mid-revert, a new one started;
5. an operator's hand edit of a unit during the rollout, then a failed gate.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from changegate.models import ChangeStatus, Outcome, Stage
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.store import Store, open_store
from changegate.worker import running_worker
from tests.faultkit import (
    TcpProxy,
    TemporalServer,
    WorkerProcess,
    applied_units,
    assert_audit_complete,
    assert_steps,
    assert_target_free,
    bounded,
    other_writes,
    report,
    stored_outcome_after,
    through,
    unit_steps,
    worker_env,
)
from tests.support import (
    POSTGRES_URL,
    Fleet,
    approve_fully,
    make_request,
    postgres_schema,
    wait_for_stage,
    wait_until,
    worker_polling,
)

pytestmark = pytest.mark.e2e

STORE_OUTAGE = 60.0
TARGET_OUTAGE = 160.0
# Every wait is bounded: an outage, plus the longest retry backoff (30 s), plus slack.
RECOVERY = 90.0

RecordProperty = Callable[[str, object], None]


def _queue(kind: str) -> str:
    return f"faults-{kind}-{uuid.uuid4().hex[:8]}"


async def _canary_applied(changes: ChangeService, change_id: str) -> ChangeStatus:
    """Wait until every unit of the canary phase is applied."""

    async def check() -> ChangeStatus | None:
        status = await changes.status(change_id)
        if status.plan is None or status.outcome is not None:
            return status if status.outcome is not None else None
        canary = {u.unit_id for u in status.plan.phases[0]}
        applied = {u.unit_id for u in status.units if u.status == "applied"}
        return status if canary <= applied else None

    status: ChangeStatus = await wait_until(check, within=60, what="the canary to be applied")
    assert status.outcome is None, f"ended before the canary was applied: {status.timeline[-4:]}"
    return status


def _since(start: float) -> float:
    return time.monotonic() - start


# ---- 1. the audit store cut for 60 s mid-canary --------------------------------------------


async def test_store_cut_60s_mid_canary_ends_done_and_the_store_catches_up(
    client: Client, settings: Settings, fleet: Fleet, record_property: RecordProperty
) -> None:
    postgres = make_url(POSTGRES_URL)
    assert postgres.host and postgres.port
    with (
        postgres_schema("cg_faults") as direct,
        TcpProxy(postgres.host, postgres.port, name="postgres") as proxy,
    ):
        proxied = through(direct, proxy)
        # The front door (admission) and the worker share the store, through the proxy; the
        # test reads it directly, past the fault.
        cfg = settings.model_copy(update={"task_queue": _queue("store"), "database_url": proxied})
        observer = open_store(direct.render_as_string(hide_password=False))
        changes = ChangeService(client, cfg)
        try:
            worker_store = await asyncio.to_thread(open_store, proxied)
            async with asyncio.timeout(300), running_worker(client, cfg, store=worker_store):
                change_id = await changes.submit(
                    make_request(rollout={"canary_bake_seconds": 5, "wave_bake_seconds": 0.5})
                )
                await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL, within=60)
                await approve_fully(changes, change_id)
                await _canary_applied(changes, change_id)

                proxy.cut()
                cut_at = time.monotonic()
                # The stages go on without the store: the outcome is decided while it is cut.
                decided: ChangeStatus | None = None
                while _since(cut_at) < STORE_OUTAGE:
                    status = await changes.status(change_id)
                    if decided is None and status.outcome is not None:
                        decided = status
                    await asyncio.sleep(0.5)
                resets = proxy.reset_on_accept
                cleared = proxy.restore()

                final: ChangeStatus = await bounded(
                    f"{change_id} to close after the store came back",
                    RECOVERY,
                    changes.wait(change_id),
                )
                closed = datetime.now(UTC)
                stored = await stored_outcome_after(observer, final, within=30)
                steps = unit_steps(fleet.write_log(), change_id)
                line = report(
                    record_property,
                    "store-cut-60s-mid-canary",
                    cleared=cleared,
                    final=final,
                    closed=closed,
                    steps=steps,
                    stored=stored,
                )

                assert final.outcome == Outcome.DONE, (line, final.timeline[-6:])
                assert decided is not None and decided.outcome == Outcome.DONE, (
                    "a store outage must neither fail nor stall the stages; at the end of the "
                    f"outage the change had no outcome: {status.stage} {status.timeline[-4:]}"
                )
                assert resets > 0, "nothing tried the store while it was cut"
                assert_steps(steps, final, reverted=False, context=line)
                assert applied_units(final) == [u.unit_id for u in final.units], line
                assert other_writes(fleet.write_log(), change_id) == []
                assert all(c["pool_size"] == 24 for c in fleet.configs("checkout").values())
                assert_audit_complete(observer, final)
                await assert_target_free(changes, observer, final, unit_count=4)
        finally:
            changes.close()
            observer.close()


# ---- 2. the target down for 160 s during VERIFY and during a rollback ----------------------


async def test_target_down_160s_during_verify_and_during_rollback(
    client: Client,
    settings: Settings,
    fleet: Fleet,
    store: Store,
    record_property: RecordProperty,
) -> None:
    results = await asyncio.gather(
        _target_down_during_verify(client, settings, fleet, store, record_property),
        _target_down_during_rollback(client, settings, fleet, store, record_property),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise BaseExceptionGroup("both target outages went wrong", failures)


async def _target_down_during_verify(
    client: Client, settings: Settings, fleet: Fleet, store: Store, record: RecordProperty
) -> str:
    with TcpProxy.for_url(fleet.url, name="fleet-verify") as proxy:
        cfg = settings.model_copy(update={"task_queue": _queue("verify"), "fleet_url": proxy.url})
        changes = ChangeService(client, cfg)
        try:
            async with asyncio.timeout(400), running_worker(client, cfg):
                change_id = await changes.submit(make_request())
                waiting = await wait_for_stage(
                    changes, change_id, Stage.AWAITING_APPROVAL, within=60
                )
                assert waiting.plan is not None
                last = waiting.plan.units()[-1].unit_id
                # VERIFY's first read: the first instance read after the last unit's apply
                # and the last wave's health measurement.
                wire = proxy.trip_on(
                    f"{change_id}:{last}:apply",
                    b"GET /metrics",
                    b"GET /services/checkout/instances/",
                    lose="request",
                )
                await approve_fully(changes, change_id)
                await wire.wait(within=90, what="the first read of VERIFY")
                assert wire.fired_at is not None
                at_cut = await changes.status(change_id)
                assert at_cut.stage == Stage.VERIFY, (wire.request_line, at_cut.timeline[-4:])

                await asyncio.sleep(max(0.0, TARGET_OUTAGE - _since(wire.fired_at)))
                before = await changes.status(change_id)
                resets = proxy.reset_on_accept
                cleared = proxy.restore()
                final: ChangeStatus = await bounded(
                    f"{change_id} to end after the fleet came back",
                    RECOVERY,
                    changes.wait(change_id),
                )
                closed = datetime.now(UTC)
                steps = unit_steps(fleet.write_log(), change_id)
                line = report(
                    record,
                    "target-down-160s-during-verify",
                    cleared=cleared,
                    final=final,
                    closed=closed,
                    steps=steps,
                )

                assert (before.stage, before.outcome) == (Stage.VERIFY, None), (
                    "VERIFY must wait out the outage",
                    before.timeline[-4:],
                )
                assert resets > 0, "nothing tried the fleet while it was down"
                assert final.outcome == Outcome.DONE, (line, final.timeline[-6:])
                assert [u.status for u in final.units] == ["verified"] * 4, final.units
                assert_steps(steps, final, reverted=False, context=line)
                assert sorted(steps) == [f"checkout-{i}" for i in range(4)], line
                others = other_writes(fleet.write_log(), change_id)
                assert [w for w in others if w["service"] == "checkout"] == [], others
                assert all(c["pool_size"] == 24 for c in fleet.configs("checkout").values())
                assert_audit_complete(store, final)
                await assert_target_free(changes, store, final, unit_count=4)
                return line
        finally:
            changes.close()


async def _target_down_during_rollback(
    client: Client, settings: Settings, fleet: Fleet, store: Store, record: RecordProperty
) -> str:
    with TcpProxy.for_url(fleet.url, name="fleet-rollback") as proxy:
        cfg = settings.model_copy(update={"task_queue": _queue("rollback"), "fleet_url": proxy.url})
        changes = ChangeService(client, cfg)
        try:
            async with asyncio.timeout(400), running_worker(client, cfg):
                # A build that does not exist: every request fails, the canary gate fails.
                change_id = await changes.submit(
                    make_request(
                        service="search",
                        parameters={"version": "latest"},
                        assumptions={"unit_count": 3},
                        rollout={"canary_units": 2},
                    )
                )
                await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL, within=60)
                # The first revert reaches the fleet and lands; its answer is lost, and the
                # fleet is down from then on.
                wire = proxy.trip_on(
                    re.compile(re.escape(change_id.encode()) + rb":[\w.-]+:revert"),
                    lose="response",
                )
                await approve_fully(changes, change_id)
                await wire.wait(within=90, what="the first revert")
                assert wire.fired_at is not None
                at_cut = await changes.status(change_id)
                assert at_cut.stage == Stage.ROLLBACK, (wire.request_line, at_cut.timeline[-4:])
                lost = next(u.unit_id for u in at_cut.units if u.unit_id in wire.request_line)

                await asyncio.sleep(max(0.0, TARGET_OUTAGE - _since(wire.fired_at)))
                before = await changes.status(change_id)
                resets = proxy.reset_on_accept
                cleared = proxy.restore()
                final: ChangeStatus = await bounded(
                    f"{change_id} to end after the fleet came back",
                    RECOVERY,
                    changes.wait(change_id),
                )
                closed = datetime.now(UTC)
                steps = unit_steps(fleet.write_log(), change_id)
                line = report(
                    record,
                    "target-down-160s-during-rollback",
                    cleared=cleared,
                    final=final,
                    closed=closed,
                    steps=steps,
                )

                assert (before.stage, before.outcome) == (Stage.ROLLBACK, None), (
                    "the revert must wait out the outage",
                    before.timeline[-4:],
                )
                assert resets > 0, "nothing tried the fleet while it was down"
                assert final.outcome == Outcome.ROLLED_BACK, (line, final.timeline[-6:])
                assert final.incident_id == f"inc-{change_id}", final.incident_id
                applied = applied_units(final)
                assert len(applied) >= 2, final.units
                # Each applied unit: applied once, reverted exactly once (the lost answer's
                # revert had landed: found at its old value, it is not written again).
                assert {u: steps.get(u) for u in applied} == {
                    u: {"apply": 1, "revert": 1} for u in applied
                }, line
                assert_steps(steps, final, reverted=True, context=line)
                statuses = {u.unit_id: u.status for u in final.units if u.unit_id in applied}
                assert statuses == {
                    u: "revert_skipped" if u == lost else "reverted" for u in applied
                }, statuses
                others = other_writes(fleet.write_log(), change_id)
                assert [w for w in others if w["service"] == "search"] == [], others
                assert all(c["version"] == "1.4.2" for c in fleet.configs("search").values())
                assert_audit_complete(store, final)
                await assert_target_free(changes, store, final, unit_count=3)
                return line
        finally:
            changes.close()


# ---- 3. Temporal SIGKILLed mid-bake and started again --------------------------------------


async def test_temporal_sigkilled_mid_bake_and_restarted_ends_done(
    settings: Settings,
    fleet: Fleet,
    store: Store,
    tmp_path_factory: pytest.TempPathFactory,
    record_property: RecordProperty,
) -> None:
    server = TemporalServer(tmp_path_factory.mktemp("temporal-faults"))
    await server.start()
    try:
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        cfg = settings.model_copy(
            update={"temporal_address": server.address, "task_queue": _queue("temporal")}
        )
        changes = ChangeService(client, cfg)
        try:
            async with asyncio.timeout(300), running_worker(client, cfg):
                change_id = await changes.submit(make_request(rollout={"canary_bake_seconds": 10}))
                await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL, within=60)
                await approve_fully(changes, change_id)
                await _canary_applied(changes, change_id)
                await asyncio.sleep(1.0)
                baking = await changes.status(change_id)
                assert (baking.stage, baking.outcome) == (Stage.CANARY, None), baking.timeline[-3:]

                server.sigkill()
                # Down for longer than the bake had left: its timer is overdue on return.
                await asyncio.sleep(12)
                cleared = await server.start()
                final: ChangeStatus = await bounded(
                    f"{change_id} to end after Temporal came back; server log:\n"
                    + server.log_tail(),
                    RECOVERY,
                    changes.wait(change_id),
                )
                closed = datetime.now(UTC)
                steps = unit_steps(fleet.write_log(), change_id)
                line = report(
                    record_property,
                    "temporal-sigkilled-mid-bake",
                    cleared=cleared,
                    final=final,
                    closed=closed,
                    steps=steps,
                )

                assert final.outcome == Outcome.DONE, (line, final.timeline[-6:])
                assert_steps(steps, final, reverted=False, context=line)
                assert sorted(steps) == [f"checkout-{i}" for i in range(4)], line
                assert other_writes(fleet.write_log(), change_id) == []
                assert all(c["pool_size"] == 24 for c in fleet.configs("checkout").values())
                assert_audit_complete(store, final)
                await assert_target_free(changes, store, final, unit_count=4)
        finally:
            changes.close()
    finally:
        server.stop()


# ---- 4. a worker SIGKILLed mid-revert ------------------------------------------------------


async def test_worker_sigkilled_mid_revert_a_new_worker_reverts_each_unit_once(
    client: Client,
    settings: Settings,
    fleet: Fleet,
    store: Store,
    tmp_path: Path,
    record_property: RecordProperty,
) -> None:
    queue = _queue("worker")
    with TcpProxy.for_url(fleet.url, name="fleet-worker-crash") as proxy:
        env = worker_env(settings, task_queue=queue, fleet_url=proxy.url)
        changes = ChangeService(client, settings.model_copy(update={"task_queue": queue}))
        first = WorkerProcess(env, tmp_path / "worker1.log")
        second: WorkerProcess | None = None
        try:
            async with asyncio.timeout(300):
                await worker_polling(changes, queue)
                change_id = await changes.submit(
                    make_request(
                        service="search",
                        parameters={"version": "latest"},
                        assumptions={"unit_count": 3},
                        rollout={"canary_units": 2},
                    )
                )
                await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL, within=60)
                # The worker dies the moment its first revert has landed on the fleet, before
                # it hears the answer: the write happened, nobody recorded it.
                wire = proxy.trip_on(
                    re.compile(re.escape(change_id.encode()) + rb":[\w.-]+:revert"),
                    lose="response",
                    cut=False,
                    then=first.sigkill,
                )
                await approve_fully(changes, change_id)
                await wire.wait(within=90, what="the first revert")
                lost = wire.request_line
                first.process.wait(timeout=10)
                assert first.process.returncode == -9, first.tail()

                second = WorkerProcess(env, tmp_path / "worker2.log")
                cleared = second.started_wall
                final: ChangeStatus = await bounded(
                    f"{change_id} to end with the second worker; its log:\n" + second.tail(),
                    RECOVERY,
                    changes.wait(change_id),
                )
                closed = datetime.now(UTC)
                steps = unit_steps(fleet.write_log(), change_id)
                line = report(
                    record_property,
                    "worker-sigkilled-mid-revert",
                    cleared=cleared,
                    final=final,
                    closed=closed,
                    steps=steps,
                )

                assert final.outcome == Outcome.ROLLED_BACK, (line, final.timeline[-6:])
                assert final.incident_id == f"inc-{change_id}", final.incident_id
                applied = applied_units(final)
                assert len(applied) >= 2, final.units
                assert {u: steps.get(u) for u in applied} == {
                    u: {"apply": 1, "revert": 1} for u in applied
                }, line
                assert_steps(steps, final, reverted=True, context=line)
                statuses = {u.unit_id: u.status for u in final.units if u.unit_id in applied}
                assert statuses == {
                    u: "revert_skipped" if u in lost else "reverted" for u in applied
                }, (lost, statuses)
                assert all(c["version"] == "1.4.2" for c in fleet.configs("search").values())
                assert_audit_complete(store, final)
                await assert_target_free(changes, store, final, unit_count=3)
        finally:
            for worker in (first, second):
                if worker is not None:
                    worker.stop()
            changes.close()


# ---- 5. an operator's hand edit during the rollout, then a failed gate ---------------------


async def test_hand_edit_during_rollout_then_failed_gate_is_a_rollback_conflict(
    changes: ChangeService, fleet: Fleet, store: Store, record_property: RecordProperty
) -> None:
    async with asyncio.timeout(180):
        # pool_size 8 under demand 16: 60% of requests fail, the canary gate fails.
        change_id = await changes.submit(
            make_request(
                parameters={"pool_size": 8},
                rollout={"canary_units": 2, "canary_bake_seconds": 3},
            )
        )
        await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL, within=60)
        await approve_fully(changes, change_id)
        status = await _canary_applied(changes, change_id)
        assert status.plan is not None
        canary = [u.unit_id for u in status.plan.phases[0]]
        assert len(canary) >= 2, status.plan
        edited, *others = canary
        fleet.set("checkout", edited, f"operator-{uuid.uuid4().hex}", pool_size=999)
        cleared = datetime.now(UTC)

        final: ChangeStatus = await bounded(
            f"{change_id} to end after the hand edit", RECOVERY, changes.wait(change_id)
        )
        closed = datetime.now(UTC)
        log = fleet.write_log()
        steps = unit_steps(log, change_id)
        line = report(
            record_property,
            "hand-edit-then-failed-gate",
            cleared=cleared,
            final=final,
            closed=closed,
            steps=steps,
        )

        assert final.outcome == Outcome.ROLLBACK_FAILED, (line, final.timeline[-6:])
        assert final.incident_id == f"inc-{change_id}", final.incident_id
        conflicts = [f for f in final.findings if f.code == "rollback-conflict"]
        assert len(conflicts) == 1, final.findings
        assert conflicts[0].message.startswith(
            f"{edited}: before pool_size=20, changegate's value pool_size=8, now pool_size=999"
        ), conflicts[0].message
        configs = fleet.configs("checkout")
        assert configs[edited]["pool_size"] == 999, "the hand edit must stay in place"
        assert all(configs[u]["pool_size"] == 20 for u in configs if u != edited), configs
        units = {u.unit_id: u.status for u in final.units}
        assert units[edited] == "conflict", units
        assert all(units[u] == "reverted" for u in others), units
        assert steps[edited] == {"apply": 1}, line
        assert all(steps[u] == {"apply": 1, "revert": 1} for u in others), line
        assert_steps(steps, final, reverted=True, context=line)
        assert [(w["instance"], w["after"]["pool_size"]) for w in other_writes(log, change_id)] == [
            (edited, 999)
        ]
        assert_audit_complete(store, final)
        await assert_target_free(changes, store, final, unit_count=4)
