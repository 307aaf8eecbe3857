"""Faults end in a truthful, safe state: closed workflows release their targets, an absent
worker is named within seconds, an absent store is waited for, activities heartbeat.

The reconciler tests run on an audit store of their own, with a worker that does not
reconcile by itself: the session worker's periodic pass cannot get there first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

from changegate.activities.heartbeat import heartbeating, heartbeats
from changegate.admission import AdmissionRefused
from changegate.api import running_api
from changegate.errors import NoWorker
from changegate.models import ChangeRequest, Decision, Outcome, Stage
from changegate.service import ChangeService, ReconcileReport, Repair, reconcile
from changegate.settings import Settings
from changegate.store import (
    ChangeRow,
    EventRow,
    Store,
    create_token,
    get_change,
    list_events,
    open_store,
    upsert_change,
)
from changegate.worker import running_worker
from tests.support import TEST_POLICY, Fleet, as_user, free_port, make_request, wait_for_stage

pytestmark = pytest.mark.e2e

LONG_AGO = timedelta(hours=1)
# Closed workflows need no grace; only a row whose workflow Temporal never saw does.
MISSING_GRACE = timedelta(minutes=30)


@dataclass
class Own:
    """A front door, worker, store and API of this module's own."""

    settings: Settings
    store: Store
    changes: ChangeService
    api_url: str
    admin_token: str
    agent_token: str
    started: list[str] = field(default_factory=list)

    async def submit(self, request: ChangeRequest | None = None) -> str:
        change_id = await self.changes.submit(request or make_request())
        self.started.append(change_id)
        return change_id

    def row(self, change_id: str) -> ChangeRow:
        with self.store.session() as session:
            found = get_change(session=session, change_id=change_id)
        assert found is not None, change_id
        return found

    def events(self, change_id: str) -> list[EventRow]:
        with self.store.session() as session:
            return list_events(session=session, change_id=change_id)

    async def reconcile(self, *, dry_run: bool = False) -> ReconcileReport:
        return await reconcile(
            self.changes.temporal, self.store, missing_grace=MISSING_GRACE, dry_run=dry_run
        )


@pytest.fixture(scope="module")
async def own(
    client: Client, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Own]:
    data = tmp_path_factory.mktemp("reconcile")
    mine = settings.model_copy(
        update={
            "database_url": f"sqlite:///{data / 'audit.db'}",
            "task_queue": f"reconcile-{uuid.uuid4().hex[:8]}",
            "reconcile_interval_seconds": 0,
        }
    )
    store = open_store(mine.store_url())
    with store.session() as session:
        admin = create_token(session=session, name="rec-admin", role="admin")
        agent = create_token(session=session, name="agent-7", role="agent", agent_id="agent-7")
    changes = ChangeService(client, mine)
    try:
        async with (
            running_worker(client, mine),
            running_api(settings=mine, changes=changes, port=0) as url,
        ):
            found = Own(mine, store, changes, url, admin, agent)
            yield found
            for change_id in found.started:
                with contextlib.suppress(RPCError):
                    await client.get_workflow_handle(change_id).terminate("test over")
    finally:
        changes.close()
        store.close()


async def running(own: Own, request: ChangeRequest | None = None) -> str:
    """A change waiting for approval, its row holding its target."""
    change_id = await own.submit(request)
    await wait_for_stage(own.changes, change_id, Stage.AWAITING_APPROVAL)
    assert own.row(change_id).outcome is None
    return change_id


def repair_of(report: ReconcileReport, change_id: str) -> Repair | None:
    return next((r for r in report.repairs if r.change_id == change_id), None)


async def test_terminated_change_is_released_and_its_target_admitted(
    own: Own, client: Client, fleet: Fleet
) -> None:
    change_id = await running(own)
    with pytest.raises(AdmissionRefused) as held:
        await own.changes.submit(make_request())
    assert held.value.rule == "one_active_change"
    await client.get_workflow_handle(change_id).terminate("from the Temporal UI")

    dry = await own.reconcile(dry_run=True)
    assert repair_of(dry, change_id) == Repair(
        change_id=change_id,
        target_label="fleet:service=checkout",
        agent_id="agent-7",
        workflow_status="TERMINATED",
        outcome=Outcome.ABORTED,
        written=False,
    )
    assert own.row(change_id).outcome is None

    # Two workers reconciling at once release the row once.
    passes = await asyncio.gather(own.reconcile(), own.reconcile())
    found = [r for r in (repair_of(p, change_id) for p in passes) if r is not None]
    assert [r.written for r in found].count(True) == 1
    row = own.row(change_id)
    assert (row.stage, row.outcome) == (Stage.ENDED.value, Outcome.ABORTED.value)
    released = [e for e in own.events(change_id) if e.kind == "reconciled"]
    assert [e.message for e in released] == ["reconciler: workflow TERMINATED; target released"]
    assert released[0].actor == "reconciler"

    status = await own.changes.status(change_id)
    assert status.outcome == Outcome.ABORTED and status.stage == Stage.ENDED
    assert status.halt_reason and "TERMINATED" in status.halt_reason

    again = await own.submit(make_request())
    await wait_for_stage(own.changes, again, Stage.AWAITING_APPROVAL)
    assert repair_of(await own.reconcile(), change_id) is None


async def test_completed_change_whose_end_was_not_recorded(own: Own, fleet: Fleet) -> None:
    change_id = await running(own, make_request(service="search", assumptions={}))
    await own.changes.reject(change_id, Decision(actor="alice", reason="not now"))
    result = await own.changes.wait(change_id)
    assert result.outcome == Outcome.REJECTED
    # As if the audit store had been down when the workflow wrote its end.
    with own.store.session() as session:
        row = get_change(session=session, change_id=change_id)
        assert row is not None
        row.outcome, row.ended_at, row.stage = None, None, Stage.AWAITING_APPROVAL.value
        session.add(row)
        dropped = sa.delete(EventRow).where(
            col(EventRow.change_id) == change_id, col(EventRow.seq) >= 2
        )
        session.exec(dropped)

    report = await own.reconcile()
    assert repair_of(report, change_id) == Repair(
        change_id=change_id,
        target_label="fleet:service=search",
        agent_id="agent-7",
        workflow_status="COMPLETED",
        outcome=Outcome.REJECTED,
        written=True,
    )
    assert own.row(change_id).outcome == Outcome.REJECTED.value
    events = own.events(change_id)
    assert [e.message for e in events[: len(result.timeline)]] == [
        e.message for e in result.timeline
    ]
    assert [(e.seq, e.message) for e in events[len(result.timeline) :]] == [
        (len(result.timeline), "reconciler: workflow COMPLETED; target released")
    ]


async def test_row_without_a_workflow_is_released_after_the_grace(own: Own) -> None:
    request = make_request(service="payments", assumptions={})
    stale, fresh = f"ghost-{uuid.uuid4().hex[:6]}", f"ghost-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    with own.store.session() as session:
        for change_id, at in ((stale, now - LONG_AGO), (fresh, now)):
            upsert_change(
                session=session, change_id=change_id, request=request, stage=Stage.RECON, at=at
            )
    try:
        report = await own.reconcile()
        assert repair_of(report, stale) is not None
        assert repair_of(report, stale) == Repair(
            change_id=stale,
            target_label="fleet:service=payments",
            agent_id="agent-7",
            workflow_status="NOT_FOUND",
            outcome=Outcome.ABORTED,
            written=True,
        )
        assert repair_of(report, fresh) is None
        assert own.row(fresh).outcome is None
    finally:
        with own.store.session() as session:
            upsert_change(
                session=session,
                change_id=fresh,
                request=request,
                stage=Stage.ENDED,
                outcome=Outcome.ABORTED,
                at=datetime.now(UTC),
            )


async def test_reconcile_route_needs_an_admin(api_url: str, cli_env: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        url = "/api/v1/reconcile?dry_run=true"
        refused = await http.post(url, headers=_bearer(cli_env["TEST_TOKEN_alice"]))
        assert refused.status_code == 403
        assert refused.json()["error"]["rule"] == "auth.role"
        shown = await http.post(url, headers=_bearer(cli_env["TEST_TOKEN_ops-admin"]))
    assert shown.status_code == 200, shown.text
    assert shown.json()["dry_run"] is True


async def test_reconcile_through_the_cli(
    own: Own, client: Client, cli_env: dict[str, str], fleet: Fleet
) -> None:
    change_id = await running(own, make_request(service="payments", assumptions={}))
    await client.get_workflow_handle(change_id).terminate("from the Temporal UI")
    env = {**cli_env, "CHANGEGATE_API_URL": own.api_url, "CHANGEGATE_TOKEN": own.agent_token}

    refused = await cli(env, "reconcile")
    assert refused.returncode == 5 and "auth.role" in refused.stderr
    env["CHANGEGATE_TOKEN"] = own.admin_token
    dry = await cli(env, "reconcile", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would release" in dry.stdout
    assert f"{change_id}  fleet:service=payments  workflow TERMINATED -> ABORTED" in dry.stdout
    assert own.row(change_id).outcome is None

    done = await cli(env, "--json", "reconcile")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {"change_id": change_id, "written": True}.items() <= next(
        r for r in report["repairs"] if r["change_id"] == change_id
    ).items()
    assert own.row(change_id).outcome == Outcome.ABORTED.value
    released = [e for e in own.events(change_id) if e.kind == "reconciled"]
    assert [e.actor for e in released] == ["reconciler (run by rec-admin)"]


async def test_status_without_a_worker_says_so(
    own: Own, client: Client, api_url: str, cli_env: dict[str, str]
) -> None:
    nobody = own.settings.model_copy(update={"task_queue": f"nobody-{uuid.uuid4().hex[:8]}"})
    orphan = ChangeService(client, nobody)
    try:
        change_id = await orphan.submit(make_request(service="search", assumptions={}))
        own.started.append(change_id)
        # The guard is for a hang: without the check the query waits out Temporal's deadline.
        async with asyncio.timeout(15):
            with pytest.raises(NoWorker) as absent:
                await orphan.status(change_id)
        assert absent.value.task_queue == nobody.task_queue
        assert "changegate worker" in str(absent.value)

        admin = as_user(cli_env, "ops-admin")
        async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
            answer = await http.get(
                f"/api/v1/changes/{change_id}", headers=_bearer(admin["CHANGEGATE_TOKEN"])
            )
        assert answer.status_code == 503
        assert answer.headers["Retry-After"]
        error = answer.json()["error"]
        assert (error["rule"], error["dependency"]) == ("worker.absent", "worker")
        assert nobody.task_queue in error["reason"]

        for command in (("show", change_id), ("watch", change_id)):
            shown = await cli(admin, *command)
            assert shown.returncode == 4, (command, shown.stdout, shown.stderr)
            assert nobody.task_queue in shown.stderr and "changegate worker" in shown.stderr

        # A closed workflow is read from its history: no worker needed.
        await client.get_workflow_handle(change_id).terminate("nobody ran it")
        ended = await orphan.status(change_id)
        assert (ended.stage, ended.outcome) == (Stage.ENDED, Outcome.ABORTED)
        assert ended.halt_reason and "TERMINATED" in ended.halt_reason
        assert repair_of(await own.reconcile(), change_id) is not None
    finally:
        orphan.close()


async def test_worker_waits_for_an_unreachable_store(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "CHANGEGATE_TEMPORAL_ADDRESS": settings.temporal_address,
        "CHANGEGATE_TASK_QUEUE": f"storeless-{uuid.uuid4().hex[:8]}",
        "CHANGEGATE_DATA_DIR": str(tmp_path),
        "CHANGEGATE_POLICY_FILE": str(TEST_POLICY),
        "CHANGEGATE_DATABASE_URL": f"postgresql://changegate:s3cret-pw@127.0.0.1:{port}/test",
        "NO_COLOR": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "changegate", "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        await asyncio.sleep(5)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(process.communicate, timeout=20)
    assert process.returncode == 0, output
    shown = f"postgresql+psycopg://changegate:***@127.0.0.1:{port}/test"
    assert f"audit store unreachable at {shown}: " in output
    assert "; retrying in 1s" in output and "; retrying in 2s" in output
    assert "Traceback" not in output and "s3cret-pw" not in output


async def test_activities_heartbeat_while_they_run() -> None:
    beats: list[object] = []
    three = asyncio.Event()

    def beat(*details: object) -> None:
        beats.append(details)
        if len(beats) >= 3:
            three.set()

    env = ActivityEnvironment()
    env.on_heartbeat = beat

    @heartbeats
    async def slow() -> str:
        await three.wait()
        return "done"

    async def fast() -> None:
        async with heartbeating(interval=0.05):
            pass

    async with asyncio.timeout(15):
        assert await env.run(slow) == "done"
    assert len(beats) >= 3
    async with heartbeating():  # outside an activity: nothing to beat for
        pass
    await env.run(fast)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, off the loop that runs this module's worker and API."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "changegate", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
