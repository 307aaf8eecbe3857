"""Following a change: a live view redrawn between polls on a terminal, else one line per event.

The live view shows what an operator asks of a running change, like `kubectl argo rollouts
get rollout --watch`: the stage, each unit's state, the countdown of the bake or analysis
interval under way, the latest metric values against their thresholds, and the approvals
still missing with the approvers who can give them. Off a terminal (a pipe, a log, `--json`)
each new timeline event is one line, so scripts keep reading a plain stream.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import click
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from changegate.cli.output import OUTCOME_COLOUR, state_label, timeline_line
from changegate.client import ChangeClient
from changegate.models import ChangeStatus, Outcome, Stage
from changegate.policy import approvers_left

__all__ = ["follow", "missing_approvals", "print_outcome", "render"]

POLL_SECONDS = 0.5
"""How often the status is read; the live view redraws four times a second in between."""

_BEFORE_APPROVAL = {Stage.RECON, Stage.VALIDATE, Stage.SUMMARY, Stage.AWAITING_APPROVAL}
_UNIT_COLOUR = {
    "pending": "white",
    "applied": "cyan",
    "verified": "green",
    "reverted": "yellow",
    "revert_skipped": "yellow",
    "conflict": "red",
    "revert_failed": "red",
    "apply_failed": "red",
}


def missing_approvals(status: ChangeStatus) -> tuple[int, list[str] | None]:
    """How many approvals are still needed, and the listed approvers who may give them: those
    of the change's risk tier, but not the proposers nor anyone who already approved.

    None instead of a list means the policy names no approvers: anyone with an approver token
    but the proposers counts.
    """
    if status.ended or status.stage not in _BEFORE_APPROVAL:
        return 0, []
    agent = status.request.agent
    missing = max(status.approvals_required - len(status.approvals), 0)
    if status.risk is None or not status.risk.approvers:
        return missing, None
    left = approvers_left(
        status.risk.approvers,
        proposers=[agent.agent_id, agent.on_behalf_of],
        given=[d.actor for d in status.approvals],
    )
    return missing, left


def _seconds(value: float) -> str:
    whole = max(round(value), 0)
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"


def _countdown(status: ChangeStatus, now: datetime) -> Text | None:
    wait = status.countdown
    if wait is None:
        return None
    if wait.ends_at is None:
        return Text(f"{wait.label}: {_seconds(wait.remaining_seconds)} left (clock stopped)")
    left = max((wait.ends_at - now).total_seconds(), 0.0)
    done = 1 - left / wait.seconds if wait.seconds else 1.0
    bar = "#" * round(done * 20)
    return Text(
        f"{wait.label}: {_seconds(left)} left of {_seconds(wait.seconds)} [{bar:<20}]",
        style="bold",
    )


def _approvals(status: ChangeStatus, now: datetime) -> Text | None:
    missing, who = missing_approvals(status)
    given = ", ".join(d.actor for d in status.approvals)
    if not missing:
        return Text(f"approved by {given}") if given else None
    line = f"{missing} of {status.approvals_required} approval(s) missing"
    if who is None:
        line += "; any approver but the proposer can give them"
    else:
        line += f"; can approve: {', '.join(who) or 'nobody, no listed approver is left'}"
    if given:
        line += f" (given: {given})"
    if status.approval_deadline is not None and status.stage == Stage.AWAITING_APPROVAL:
        left = (status.approval_deadline - now).total_seconds()
        line += f"; expires in {_seconds(left)}"
    return Text(line, style="yellow")


def _metrics(status: ChangeStatus) -> RenderableType | None:
    measurement = status.measurement
    if measurement is None:
        return None
    table = Table(box=None, show_edge=False)
    for column in ("unit", "metric", "value", "max", ""):
        table.add_column(column)
    for value in measurement.values:
        over = value.value is None or value.value > value.max
        shown = "no data" if value.value is None else f"{value.value:g}"
        verdict = Text("over" if value.value is not None and over else "ok" if not over else "?")
        verdict.stylize("red" if over else "green")
        table.add_row(value.unit_id, value.metric, shown, f"{value.max:g}", verdict)
    title = Text(f"latest measurement: {measurement.phase} ({measurement.reason})")
    return Group(title, table) if measurement.values else title


def _units(status: ChangeStatus) -> RenderableType | None:
    if not status.units:
        return None
    table = Table(box=None, show_edge=False)
    for column in ("unit", "phase", "state", "detail"):
        table.add_column(column)
    for unit in status.units:
        state = Text(unit.status, style=_UNIT_COLOUR.get(unit.status, "white"))
        table.add_row(unit.unit_id, unit.phase, state, unit.detail or "")
    return table


def render(status: ChangeStatus, *, now: datetime) -> RenderableType:
    """One frame of the live view of `status` at `now` (the halt reason follows the view)."""
    request = status.request
    stage = Text(status.stage.value, style="bold")
    if status.paused:
        stage.append(" (paused)", style="yellow")
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("Change", status.change_id)
    head.add_row("Target", f"{request.target.label()}  {request.change.operation}")
    head.add_row("Agent", request.agent.agent_id)
    head.add_row("Stage", stage)
    if status.outcome is not None:
        colour = OUTCOME_COLOUR[status.outcome]
        head.add_row("Outcome", Text(status.outcome.value, style=f"bold {colour}"))
    if status.risk is not None:
        head.add_row("Risk", status.risk.tier)
    parts: list[RenderableType] = [head]
    for line in (_countdown(status, now), _approvals(status, now)):
        if line is not None:
            parts.append(line)
    for block in (_units(status), _metrics(status)):
        if block is not None:
            parts += [Text(""), block]
    if status.timeline:
        parts += [Text(""), Text(timeline_line(status.timeline[-1]).strip(), style="dim")]
    return Group(*parts)


async def follow(
    changes: ChangeClient, change_id: str, *, live: bool, as_json: bool
) -> ChangeStatus:
    """Follow the change until it ends and return its final status.

    `live`: redraw the view on this terminal between polls. Otherwise print each new timeline
    event as one line (a JSON object with `as_json`).
    """
    if live:
        return await _follow_live(changes, change_id)
    printed = 0
    async for status in changes.watch(change_id, interval=POLL_SECONDS):
        for event in status.timeline[printed:]:
            if as_json:
                click.echo(json.dumps(event.model_dump(mode="json"), sort_keys=True))
            else:
                click.echo(timeline_line(event))
        printed = len(status.timeline)
        if status.ended:
            return status
    raise AssertionError("watch ends only with an ended change")


async def _follow_live(changes: ChangeClient, change_id: str) -> ChangeStatus:
    status = await changes.status(change_id)
    console = Console()
    with Live(
        get_renderable=lambda: render(status, now=datetime.now(UTC)),
        console=console,
        refresh_per_second=4,
        redirect_stdout=False,
        redirect_stderr=False,
    ) as live:
        while not status.ended:
            await asyncio.sleep(POLL_SECONDS)
            status = await changes.status(change_id)
        live.refresh()
    return status


def print_outcome(status: ChangeStatus) -> None:
    """`<id> ended <OUTCOME>`, and why when it is not DONE."""
    click.echo(f"{status.change_id} ended {state_label(status)}")
    if status.outcome != Outcome.DONE and status.halt_reason:
        click.echo(f"why: {status.halt_reason}")
