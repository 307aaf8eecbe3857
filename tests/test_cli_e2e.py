"""The real `changegate` CLI against the real dev server, worker and fleet."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from changegate.models import Outcome, Stage
from changegate.service import ChangeService
from changegate.service.visibility import change_query
from tests.support import Fleet, as_user, make_request, wait_for_stage

pytestmark = pytest.mark.e2e


async def cli(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI without blocking the loop: the session's worker runs on it too."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "changegate", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


async def cli_json(env: dict[str, str], *args: str, stdin: str | None = None) -> Any:
    result = await cli(env, "--json", *args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def request_yaml(**kwargs: Any) -> str:
    return yaml.safe_dump(make_request(**kwargs).model_dump(mode="json", exclude_defaults=True))


async def test_submit_from_file_then_approve_and_show(
    cli_env: dict[str, str], changes: ChangeService, fleet: Fleet, tmp_path: Path
) -> None:
    path = tmp_path / "change.yaml"
    path.write_text(request_yaml())
    change_id = (await cli_json(cli_env, "submit", str(path)))["change_id"]
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)

    pending = await cli_json(cli_env, "list", "--pending", "--agent", "agent-7")
    assert change_id in [c["change_id"] for c in pending]

    shown = await cli(cli_env, "show", change_id)
    assert shown.returncode == 0
    assert "WHAT THE AGENT DID NOT KNOW" in shown.stdout and "TIMELINE" in shown.stdout

    approved = await cli(as_user(cli_env, "alice"), "approve", change_id, "--comment", "ok")
    assert approved.returncode == 0, approved.stderr
    watched = await cli(cli_env, "watch", change_id)
    assert watched.returncode == 0 and "DONE" in watched.stdout

    status = await cli_json(cli_env, "show", change_id)
    assert status["outcome"] == "DONE"
    assert [(a["actor"], a["reason"]) for a in status["approvals"]] == [("alice", "ok")]
    ended = await cli_json(
        cli_env, "list", "--stage", "ENDED", "--target", "fleet:service=checkout"
    )
    assert change_id in [c["change_id"] for c in ended]


async def test_submit_from_stdin_with_wait_and_reject(
    cli_env: dict[str, str], changes: ChangeService, fleet: Fleet
) -> None:
    submitted = await cli_json(
        cli_env, "submit", "-", stdin=request_yaml(service="search", assumptions={})
    )
    change_id = submitted["change_id"]
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    refused = await cli(as_user(cli_env, "alice"), "reject", change_id)
    assert refused.returncode == 2 and "--reason" in refused.stderr
    assert (
        await cli(as_user(cli_env, "alice"), "reject", change_id, "--reason", "no")
    ).returncode == 0
    assert (await changes.wait(change_id)).outcome == Outcome.REJECTED
    assert fleet.write_log() == []


async def test_submit_wait_exits_nonzero_when_the_change_rolls_back(
    cli_env: dict[str, str], changes: ChangeService, fleet: Fleet, tmp_path: Path
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(make_request(parameters={"version": "latest"}).model_dump_json())
    known = await _running(changes)
    proc = subprocess.Popen(
        [sys.executable, "-m", "changegate", "--json", "submit", "--wait", str(path)],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        refs = await _wait_listed(changes, known)
        await wait_for_stage(changes, refs, Stage.AWAITING_APPROVAL)
        assert (await cli(as_user(cli_env, "alice"), "approve", refs)).returncode == 0
        out, err = await asyncio.to_thread(proc.communicate, timeout=120)
        assert proc.returncode == 1, err
        assert json.loads(out)["outcome"] == "ROLLED_BACK"
    finally:
        # A failed test must not leave the CLI running with its pipes open.
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


async def _running(changes: ChangeService) -> set[str]:
    """The changes running now (on any task queue): none of them is the one about to come."""
    return {ref.change_id for ref in await changes.list(change_query(running=True))}


async def _wait_listed(changes: ChangeService, known: set[str]) -> str:
    """The change the CLI submitted: the newest running one that was not in `known`."""
    from tests.support import wait_until

    async def newest_running() -> str | None:
        refs = await changes.list(change_query(running=True))
        fresh = [ref.change_id for ref in refs if ref.change_id not in known]
        return fresh[0] if fresh else None

    change_id: str = await wait_until(newest_running, what="the submitted change")
    return change_id


async def test_pause_resume_and_abort_through_the_cli(
    cli_env: dict[str, str], changes: ChangeService, fleet: Fleet
) -> None:
    change_id = await changes.submit(make_request(rollout={"canary_bake_seconds": 20}))
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    assert (await cli(as_user(cli_env, "alice"), "approve", change_id)).returncode == 0
    await wait_for_stage(changes, change_id, Stage.CANARY)
    assert (
        await cli(as_user(cli_env, "bob"), "pause", change_id, "--reason", "look")
    ).returncode == 0
    assert (await cli_json(cli_env, "show", change_id))["paused"] is True
    assert (await cli(as_user(cli_env, "bob"), "resume", change_id)).returncode == 0
    assert (await cli_json(cli_env, "show", change_id))["paused"] is False
    assert (
        await cli(as_user(cli_env, "bob"), "abort", change_id, "--reason", "stop")
    ).returncode == 0
    final = await changes.wait(change_id)
    assert final.outcome == Outcome.ROLLED_BACK
    assert all(c["pool_size"] == 20 for c in fleet.configs("checkout").values())


async def test_unknown_change_id_exits_3(cli_env: dict[str, str]) -> None:
    result = await cli(cli_env, "show", "chg-does-not-exist")
    assert result.returncode == 3
    assert "no change 'chg-does-not-exist'" in result.stderr


async def test_invalid_file_names_the_field_and_exits_2(cli_env: dict[str, str]) -> None:
    raw = make_request().model_dump(mode="json")
    raw["rollout"]["canary_units"] = 0
    del raw["intent"]
    result = await cli(cli_env, "submit", "-", stdin=json.dumps(raw))
    assert result.returncode == 2
    assert "intent: Field required" in result.stderr
    assert "rollout.canary_units: Input should be greater than or equal to 1" in result.stderr


async def test_file_that_is_not_yaml_exits_2(cli_env: dict[str, str]) -> None:
    result = await cli(cli_env, "submit", "-", stdin="agent: [unclosed")
    assert result.returncode == 2 and "neither valid YAML nor JSON" in result.stderr


async def test_unreachable_api_exits_4(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "CHANGEGATE_API_URL": "http://127.0.0.1:1"}
    result = await cli(env, "show", "chg-x")
    assert result.returncode == 4
    assert "the changegate API at http://127.0.0.1:1 did not answer" in result.stderr
