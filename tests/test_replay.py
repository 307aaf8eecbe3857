"""Recorded histories must replay against the current workflow code (determinism guard)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from changegate.cli.history import replayer

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
PATCHES = ("audit-at-moments", "fewer-activities")


def test_the_three_required_histories_are_recorded() -> None:
    scenarios = {"done", "rolled_back", "rejected"}
    # Before and after each patch (`audit-at-moments`, then `fewer-activities`): all replay.
    patched = {f"{name}-{patch}" for name in scenarios for patch in PATCHES}
    assert {p.stem for p in HISTORIES} >= scenarios | patched


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    result = await replayer().replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


async def test_a_history_from_other_code_is_reported_as_non_deterministic(
    tmp_path: Path,
) -> None:
    # The same history with its first activity renamed: this code would schedule another.
    data = json.loads((Path(__file__).parent / "histories" / "done.json").read_text())
    for event in data["events"]:
        attrs = event.get("activityTaskScheduledEventAttributes")
        if attrs:
            attrs["activityType"]["name"] = "some_other_activity"
            break
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(data))
    result = subprocess.run(
        [sys.executable, "-m", "changegate", "replay", str(changed)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "FAIL" in result.stdout and "some_other_activity" in result.stdout
