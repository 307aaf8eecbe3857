"""Approval deadlines on Temporal's time-skipping test server: an hour passes in moments."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from changegate.client import ChangeClient
from changegate.models import Decision, Outcome, Stage
from changegate.runtime import find_binary
from changegate.settings import Settings
from changegate.worker import running_worker
from tests.support import Fleet, make_request, wait_for_stage


@pytest.fixture(scope="module")
async def skipping() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    async with env:
        yield env


async def _changes(
    env: WorkflowEnvironment, fleet: Fleet, session: Settings
) -> tuple[ChangeClient, Settings]:
    # The time-skipping server cannot register custom search attributes.
    settings = session.model_copy(
        update={"task_queue": f"skip-{uuid.uuid4().hex[:8]}", "search_attributes": False}
    )
    return ChangeClient(env.client, settings), settings


async def test_unattended_change_expires_with_nothing_applied(
    skipping: WorkflowEnvironment, fleet: Fleet, settings: Settings
) -> None:
    changes, settings = await _changes(skipping, fleet, settings)
    request = make_request(rollout={"approval_timeout_seconds": 3600})
    async with running_worker(skipping.client, settings):
        change_id = await changes.submit(request)
        await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
        await skipping.sleep(3601)
        final = await changes.wait(change_id)
    assert final.outcome == Outcome.EXPIRED
    assert "3600" in final.timeline[-1].message
    assert final.approval_deadline is not None
    assert fleet.write_log() == []


async def test_approval_inside_the_deadline_is_not_expired(
    skipping: WorkflowEnvironment, fleet: Fleet, settings: Settings
) -> None:
    changes, settings = await _changes(skipping, fleet, settings)
    request = make_request(rollout={"approval_timeout_seconds": 3600})
    async with running_worker(skipping.client, settings):
        change_id = await changes.submit(request)
        await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
        await skipping.sleep(1800)
        await changes.reject(change_id, Decision(actor="alice", reason="not now"))
        final = await changes.wait(change_id)
    assert final.outcome == Outcome.REJECTED
