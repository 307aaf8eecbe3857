"""Approval deadlines on Temporal's time-skipping test server: an hour passes in moments."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from changegate.models import Decision, Outcome, Stage
from changegate.runtime import find_binary
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.worker import running_worker
from tests.support import Fleet, make_request, wait_for_stage, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def skipping() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    async with env:
        yield env


@asynccontextmanager
async def awaiting_approval(
    env: WorkflowEnvironment, session: Settings, **overrides: object
) -> AsyncIterator[tuple[ChangeService, str]]:
    """A worker on its own queue and a change (one-hour approval window) waiting for a decision."""
    # The time-skipping server cannot register custom search attributes, and its clock runs
    # ahead of the wall clock admission signs tickets by (earlier tests skipped hours).
    settings = session.model_copy(
        update={
            "task_queue": f"skip-{uuid.uuid4().hex[:8]}",
            "search_attributes": False,
            "ticket_ttl_seconds": 365 * 86_400.0,
            **overrides,
        }
    )
    changes = ChangeService(env.client, settings)
    try:
        async with running_worker(env.client, settings):
            request = make_request(rollout={"approval_timeout_seconds": 3600})
            change_id = await changes.submit(request)
            await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
            yield changes, change_id
    finally:
        changes.close()


async def test_unattended_change_expires_with_nothing_applied(
    skipping: WorkflowEnvironment, fleet: Fleet, settings: Settings
) -> None:
    async with awaiting_approval(skipping, settings) as (changes, change_id):
        await skipping.sleep(3601)
        final = await changes.wait(change_id)
    assert final.outcome == Outcome.EXPIRED
    assert "3600" in final.timeline[-1].message
    assert final.approval_deadline is not None
    assert fleet.write_log() == []


async def test_approval_inside_the_deadline_is_not_expired(
    skipping: WorkflowEnvironment, fleet: Fleet, settings: Settings
) -> None:
    async with awaiting_approval(skipping, settings) as (changes, change_id):
        await skipping.sleep(1800)
        await changes.reject(change_id, Decision(actor="alice", reason="not now"))
        final = await changes.wait(change_id)
    assert final.outcome == Outcome.REJECTED


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, object]]]]:
    """A loopback HTTP receiver that records the JSON bodies posted to it."""
    received: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/escalate", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_a_change_nobody_decides_on_is_escalated_before_it_expires(
    skipping: WorkflowEnvironment,
    fleet: Fleet,
    settings: Settings,
    webhook: tuple[str, list[dict[str, object]]],
) -> None:
    url, received = webhook
    async with awaiting_approval(skipping, settings, escalation_webhook=url) as (
        changes,
        change_id,
    ):
        await skipping.sleep(2900)  # past 80% of the hour
        await wait_until(lambda: bool(received), within=30, what="the escalation notice")
        await changes.reject(change_id, Decision(actor="alice", reason="too late in the day"))
        final = await changes.wait(change_id)
    [notice] = received
    assert notice["change_id"] == change_id
    assert notice["approvals"] == 0 and notice["approvals_required"] == 1
    assert 0 < float(str(notice["seconds_left"])) <= 720
    assert final.outcome == Outcome.REJECTED
    assert any(e.kind == "escalated" for e in final.timeline)
