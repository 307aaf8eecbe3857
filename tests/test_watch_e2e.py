"""The live view of `watch` and `submit --wait`, captured from a real terminal (tmux).

The CLI runs as a subprocess in a tmux pane against the session's API, worker and fleet;
`capture-pane` reads the screen as a person would see it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from changegate.models import Outcome, Stage
from changegate.service import ChangeService
from tests.support import Fleet, as_user, make_request, wait_for_stage, wait_until
from tests.test_cli_e2e import cli

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        subprocess.run(["which", "tmux"], capture_output=True, check=False).returncode != 0,
        reason="tmux is not installed",
    ),
]


class Pane:
    """One tmux pane on a private server, running a command until it ends, then holding."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True
        ).stdout

    def screen(self) -> str:
        """The pane's visible text, one line per row."""
        return self.tmux("capture-pane", "-p", "-t", "view")


@pytest.fixture
def pane(tmp_path: Path) -> Iterator[Pane]:
    pane = Pane(f"cg-{uuid.uuid4().hex[:8]}")
    yield pane
    subprocess.run(["tmux", "-L", pane.socket, "kill-server"], capture_output=True, check=False)


def start(pane: Pane, env: dict[str, str], *args: str) -> None:
    """Run `changegate ARGS` in a 120x50 pane; `exit=N` is printed when it ends."""
    command = shlex.join([sys.executable, "-m", "changegate", *args])
    subprocess.run(
        [
            "tmux", "-L", pane.socket, "-f", "/dev/null", "new-session", "-d", "-s", "view",
            "-x", "120", "-y", "50", f"{command}; echo exit=$?; sleep 600",
        ],
        env={**env, "TERM": "xterm-256color"},
        check=True,
    )  # fmt: skip


async def shows(pane: Pane, *needles: str, within: float = 60.0) -> str:
    """The first screen that holds every needle."""

    def check() -> str | None:
        screen = pane.screen()
        return screen if all(n in screen for n in needles) else None

    try:
        found: str = await wait_until(check, within=within, what=f"{needles} on screen")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the screen was:\n{pane.screen()}") from None
    return found


async def test_watch_shows_approvals_bake_countdown_units_and_metrics_live(
    cli_env: dict[str, str], changes: ChangeService, fleet: Fleet, pane: Pane
) -> None:
    request = make_request(
        rollout={"wave_bake_seconds": 60, "canary_bake_seconds": 0.5}
    ).model_copy(update={"risk_hint": "high"})
    change_id = await changes.submit(request)
    start(pane, cli_env, "watch", change_id)

    waiting = await shows(pane, "AWAITING_APPROVAL", "2 of 2 approval(s) missing")
    assert "can approve: alice, bob, recorder" in waiting
    assert "carol" not in waiting  # high risk needs role sre, which carol lacks
    assert "expires in" in waiting

    assert (await cli(as_user(cli_env, "alice"), "approve", change_id)).returncode == 0
    half = await shows(pane, "1 of 2 approval(s) missing")
    assert "can approve: bob, recorder (given: alice)" in half

    assert (await cli(as_user(cli_env, "bob"), "approve", change_id)).returncode == 0
    baking = await shows(pane, "bake:", "left of 1m00s", "latest measurement")
    status = await changes.status(change_id)
    assert status.countdown is not None and status.countdown.label in baking
    assert "approval(s) missing" not in baking and "approved by alice, bob" in baking
    rows: dict[str, list[str]] = {}
    for line in baking.splitlines():
        if line.split():
            rows.setdefault(line.split()[0], line.split())  # the units table comes first
    for unit in status.units:
        assert unit.status in rows[unit.unit_id], f"{unit.unit_id} shows {rows[unit.unit_id]}"
    assert status.measurement is not None and status.measurement.values
    metric = status.measurement.values[0]
    assert any(
        line.split()[:2] == [metric.unit_id, metric.metric] and f"{metric.max:g}" in line.split()
        for line in baking.splitlines()
    )

    # The countdown moves on between polls while nothing else changes.
    def countdown(screen: str) -> str:
        return next(line for line in screen.splitlines() if "bake:" in line)

    def moved() -> bool:
        return countdown(pane.screen()) != countdown(baking)

    await wait_until(moved, what="the countdown to move")

    assert (
        await cli(as_user(cli_env, "bob"), "abort", change_id, "--reason", "seen enough")
    ).returncode == 0
    ended = await shows(pane, "exit=")
    assert f"{change_id} ended ROLLED_BACK" in ended
    assert "why: aborted by bob" in ended and "seen enough" in ended
    assert "exit=1" in ended
    assert (await changes.wait(change_id)).outcome == Outcome.ROLLED_BACK


async def test_submit_wait_shows_the_view_and_ends_with_the_halt_reason(
    cli_env: dict[str, str], changes: ChangeService, fleet: Fleet, pane: Pane, tmp_path: Path
) -> None:
    path = tmp_path / "change.json"
    path.write_text(make_request(service="search", assumptions={"unit_count": 3}).model_dump_json())
    start(pane, cli_env, "submit", "--wait", "--timeout", "120", str(path))
    screen = await shows(pane, "AWAITING_APPROVAL", "1 of 1 approval(s) missing")
    assert "can approve: alice, bob, carol, recorder" in screen
    change_id = screen.split("submitted ", 1)[1].split(";", 1)[0]
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    rejected = await cli(as_user(cli_env, "alice"), "reject", change_id, "--reason", "not today")
    assert rejected.returncode == 0, rejected.stderr
    ended = await shows(pane, "exit=")
    assert f"{change_id} ended REJECTED" in ended
    assert "why: " in ended and "not today" in ended
    assert "exit=1" in ended


async def test_watch_off_a_terminal_prints_one_line_per_event(
    cli_env: dict[str, str], changes: ChangeService, fleet: Fleet
) -> None:
    change_id = await changes.submit(make_request(service="payments", assumptions={}))
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    assert (
        await cli(as_user(cli_env, "alice"), "reject", change_id, "--reason", "no")
    ).returncode == 0
    final = await changes.wait(change_id)

    text = await cli(cli_env, "watch", change_id)
    assert text.returncode == 1
    assert "\x1b[" not in text.stdout
    lines = text.stdout.splitlines()
    assert len(lines) == len(final.timeline) + 2  # each event, the outcome, and why
    assert lines[-2] == f"{change_id} ended REJECTED"
    assert lines[-1].startswith("why: ") and "no" in lines[-1]

    machine = await cli(cli_env, "--json", "watch", change_id)
    assert machine.returncode == 1
    events = [json.loads(line) for line in machine.stdout.splitlines()]
    assert [e["kind"] for e in events] == [e.kind for e in final.timeline]
