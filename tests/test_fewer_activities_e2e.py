"""A change runs the fewest activities its stages need (`fewer-activities`), and loses nothing.

VALIDATE and planning are one activity, the summary is rendered in the workflow, every unit
is read back in one activity, and the end is one write (the rest of the record, the outcome
and the incident). These tests hold the history to that shape and the audit store to the
whole story: every timeline event, the outcome and the incident, when the result returns.
"""

from __future__ import annotations

import pytest
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from changegate.activities import RolloutActivities
from changegate.kinds import KindRegistry
from changegate.models import (
    ChangeStatus,
    Decision,
    Outcome,
    Stage,
    Target,
    VerifyAllInput,
)
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.store import Store, get_change, get_incident, list_events
from tests.support import Fleet, make_request, wait_for_stage

pytestmark = pytest.mark.e2e

APPROVER = Decision(actor="alice", reason="looks right")
# Steps merged away: a new change must never schedule them.
MERGED_AWAY = {"validate_change", "plan_change", "render_summary", "verify_unit"}


async def _activities(client: Client, change_id: str) -> list[str]:
    """The activity types the change's workflow scheduled, in order."""
    history = await client.get_workflow_handle(change_id).fetch_history()
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]


def _stored(store: Store, final: ChangeStatus) -> None:
    """The audit store holds exactly the workflow's timeline and its outcome."""
    with store.session() as session:
        events = list_events(session=session, change_id=final.change_id)
        row = get_change(session=session, change_id=final.change_id)
    assert [(e.kind, e.message) for e in events] == [(e.kind, e.message) for e in final.timeline]
    assert row is not None and row.outcome == final.outcome


async def test_a_done_change_runs_one_assessment_one_read_back_and_one_closing_write(
    changes: ChangeService, client: Client, fleet: Fleet, store: Store
) -> None:
    change_id = await changes.submit(make_request(parameters={"pool_size": 24}))
    waiting = await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    # The summary rendered in the workflow reads as the activity's did.
    assert waiting.summary is not None
    assert waiting.summary.startswith(f"CHANGE {change_id}: ")
    assert "pool_size 20 → 24 on all 4" in waiting.summary
    await changes.approve(change_id, APPROVER)
    final = await changes.wait(change_id)
    assert final.outcome == Outcome.DONE, final.timeline

    # The front door and the worker share a client, so the dev server hands the first
    # workflow task straight back with the start (eager start): no poll in between.
    history = await client.get_workflow_handle(change_id).fetch_history()
    assert history.events[0].workflow_execution_started_event_attributes.eager_execution_accepted
    names = await _activities(client, change_id)
    assert not MERGED_AWAY & set(names), names
    before_approval = names[: names.index("judge_decision")]
    assert before_approval == [
        "verify_admission",
        "observe_target",
        "assess_change",
        "record_change",
    ]
    assert names.count("verify_units") == 1
    assert names.count("apply_unit") == 4
    assert (
        names[-1] == "close_change" and "record_change" not in names[names.index("verify_units") :]
    )
    assert [u.status for u in final.units] == ["verified"] * 4
    _stored(store, final)


async def test_a_rolled_back_change_stores_its_incident_and_whole_story_in_the_closing_write(
    changes: ChangeService, client: Client, fleet: Fleet, store: Store
) -> None:
    change_id = await changes.submit(
        make_request(parameters={"version": "1.5.0-rc1"}, assumptions={"units.*.version": "1.4.2"})
    )
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    await changes.approve(change_id, APPROVER)
    final = await changes.wait(change_id)
    assert final.outcome == Outcome.ROLLED_BACK, final.timeline

    # The id is published with the outcome; the row is in the store when the result returns.
    assert final.incident_id == f"inc-{change_id}"
    assert final.timeline[-1].kind == "incident"
    with store.session() as session:
        incident = get_incident(session=session, incident_id=final.incident_id)
    assert incident is not None and incident.change_id == change_id
    names = await _activities(client, change_id)
    assert names[-1] == "close_change" and names.count("close_change") == 1
    _stored(store, final)


async def test_read_back_of_every_unit_names_the_one_edited_by_hand(
    settings: Settings, fleet: Fleet
) -> None:
    fleet.set("search", "search-1", "hand-edit", pool_size=31)
    providers = KindRegistry().providers(settings)
    try:
        rollout = RolloutActivities(providers)
        target = Target(kind="fleet", selector={"service": "search"})
        expected = {f"search-{i}": {"pool_size": 20} for i in (2, 0, 1)}
        found = await ActivityEnvironment().run(
            rollout.verify_units, VerifyAllInput(target=target, expected=expected)
        )
    finally:
        await providers.aclose()

    # One result per unit, in the order asked; only the edited unit differs, and says how.
    assert [r.unit_id for r in found.results] == ["search-2", "search-0", "search-1"]
    assert [r.ok for r in found.results] == [True, True, False]
    assert "pool_size: 31 (expected 20)" in found.results[2].detail
