"""CLI conventions against the real stack: output flags anywhere, JSON errors, enum filters,
`--outcome`, `submit --wait --timeout` and the halt reason, and `changegate example`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from changegate.kinds import KindRegistry
from changegate.models import ChangeRequest, Stage
from changegate.service import ChangeService
from tests.support import Fleet, as_user, make_request, wait_for_stage, wait_until
from tests.test_cli_e2e import _running, _wait_listed, cli

pytestmark = pytest.mark.e2e


def loads(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def error_of(result: subprocess.CompletedProcess[str], code: int) -> dict[str, Any]:
    assert result.returncode == code, (result.stdout, result.stderr)
    body: dict[str, Any] = json.loads(result.stderr)["error"]
    assert {"rule", "reason", "would_pass"} <= body.keys()
    return body


async def test_json_after_the_subcommand_and_errors_as_json(
    cli_env: dict[str, str], changes: ChangeService, fleet: Fleet
) -> None:
    change_id = await changes.submit(make_request())
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)

    listed = loads(await cli(cli_env, "list", "--pending", "--json"))
    assert change_id in [ref["change_id"] for ref in listed]
    shown = loads(await cli(cli_env, "show", change_id, "-o", "json"))
    assert shown["change_id"] == change_id and shown["stage"] == "AWAITING_APPROVAL"
    text = await cli(cli_env, "--json", "show", change_id, "-o", "text")
    assert text.returncode == 0 and "TIMELINE" in text.stdout

    missing = error_of(await cli(cli_env, "show", "chg-does-not-exist", "--json"), 3)
    assert missing["rule"] == "not_found" and "chg-does-not-exist" in missing["reason"]
    plain = await cli(cli_env, "show", "chg-does-not-exist")
    assert plain.returncode == 3 and plain.stderr.startswith("error: ")

    rejected = await cli(as_user(cli_env, "alice"), "reject", change_id, "--reason", "no")
    assert rejected.returncode == 0, rejected.stderr


async def test_enum_filters_are_validated(cli_env: dict[str, str]) -> None:
    outcome = error_of(await cli(cli_env, "list", "--outcome", "ENDED", "-o", "json"), 2)
    assert outcome["rule"] == "schema" and "ROLLED_BACK" in outcome["reason"]
    stage = await cli(cli_env, "list", "--stage", "NOPE")
    assert stage.returncode == 2 and "AWAITING_APPROVAL" in stage.stderr

    invalid = error_of(await cli(cli_env, "--json", "submit", "-"), 2)
    assert invalid["rule"] == "request.malformed"
    assert "changegate example" in invalid["would_pass"]
    fields = error_of(await cli(cli_env, "submit", "--json", "-", stdin="intent: x\n"), 2)
    assert fields["rule"] == "schema"
    assert "agent" in [field["path"] for field in fields["fields"]]
    text = await cli(cli_env, "submit", "-", stdin="intent: x\n")
    assert "changegate example [KIND]" in text.stderr


async def test_example_is_a_request_the_api_accepts(
    cli_env: dict[str, str], changes: ChangeService, fleet: Fleet
) -> None:
    printed = await cli(cli_env, "example")
    assert printed.returncode == 0, printed.stderr
    assert "# version:" in printed.stdout and printed.stdout.startswith("# A change request")
    raw = yaml.safe_load(printed.stdout)
    registry = KindRegistry()
    registry.check(registry.get("fleet"), ChangeRequest.model_validate(raw))

    # The token acts for agent-7; the example names a placeholder agent.
    raw["agent"]["agent_id"] = "agent-7"
    submitted = loads(await cli(cli_env, "submit", "-", "--json", stdin=yaml.safe_dump(raw)))
    await wait_for_stage(changes, submitted["change_id"], Stage.AWAITING_APPROVAL)
    reason = "example only"
    decided = await cli(
        as_user(cli_env, "alice"), "reject", submitted["change_id"], "--reason", reason
    )
    assert decided.returncode == 0, decided.stderr

    unknown = error_of(await cli(cli_env, "example", "nope", "--json"), 2)
    assert unknown["rule"] == "target.kind" and "fleet" in unknown["would_pass"]


async def test_wait_ends_with_the_halt_reason_and_outcome_filters_find_it(
    cli_env: dict[str, str], changes: ChangeService, fleet: Fleet, api_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "change.json"
    path.write_text(make_request().model_dump_json())
    known = await _running(changes)
    proc = subprocess.Popen(
        [sys.executable, "-m", "changegate", "submit", "--wait", str(path)],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        change_id = await _wait_listed(changes, known)
        await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
        rejected = await cli(
            as_user(cli_env, "alice"), "reject", change_id, "--reason", "not this week"
        )
        assert rejected.returncode == 0, rejected.stderr
        out, err = await asyncio.to_thread(proc.communicate, timeout=120)
        assert proc.returncode == 1, err
        assert f"{change_id} ended REJECTED" in out
        assert "why: " in out and "not this week" in out

        async def listed(outcome: str) -> list[str]:
            refs = loads(await cli(cli_env, "list", "--outcome", outcome, "--json"))
            assert {ref["outcome"] for ref in refs} <= {outcome.upper()}
            return [ref["change_id"] for ref in refs]

        async def rejected_listed() -> bool:
            return change_id in await listed("rejected")  # case does not matter

        await wait_until(rejected_listed, what="the change listed under REJECTED")
        assert change_id not in await listed("DONE")

        headers = {"Authorization": f"Bearer {cli_env['TEST_TOKEN_agent-7']}"}
        async with httpx.AsyncClient(base_url=api_url, headers=headers) as http:
            found = (await http.get("/api/v1/changes", params={"outcome": "REJECTED"})).json()
            assert change_id in [ref["change_id"] for ref in found]
            assert {ref["outcome"] for ref in found} == {"REJECTED"}
            assert change_id not in [
                ref["change_id"]
                for ref in (await http.get("/api/v1/changes", params={"outcome": "DONE"})).json()
            ]
            bad = await http.get("/api/v1/changes", params={"outcome": "ENDED"})
            assert bad.status_code == 422 and bad.json()["error"]["rule"] == "schema"
    finally:
        # A failed test must not leave the CLI running with its pipes open.
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


async def test_wait_timeout_exits_4_and_the_change_goes_on(
    cli_env: dict[str, str], changes: ChangeService, fleet: Fleet, tmp_path: Path
) -> None:
    path = tmp_path / "change.json"
    path.write_text(make_request().model_dump_json())
    timed_out = await cli(cli_env, "submit", "--wait", "--timeout", "1", str(path))
    assert timed_out.returncode == 4, timed_out.stderr
    assert "had not ended after 1s" in timed_out.stderr
    change_id = timed_out.stdout.split()[1].rstrip(";")
    assert f"changegate watch {change_id}" in timed_out.stderr
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)

    other = tmp_path / "other.json"
    other.write_text(
        make_request(service="search", assumptions={"unit_count": 3}).model_dump_json()
    )
    as_json = error_of(
        await cli(cli_env, "submit", "--json", "--wait", "--timeout", "1", str(other)), 4
    )
    assert as_json["rule"] == "wait.timeout" and as_json["change_id"].startswith("chg-")
    await wait_for_stage(changes, as_json["change_id"], Stage.AWAITING_APPROVAL)
    lone = await cli(cli_env, "submit", "--timeout", "1", str(path))
    assert lone.returncode == 2 and "--wait" in lone.stderr

    for pending in (change_id, as_json["change_id"]):
        decided = await cli(
            as_user(cli_env, "alice"), "reject", pending, "--reason", "timeout test"
        )
        assert decided.returncode == 0, decided.stderr
