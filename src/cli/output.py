"""How the CLI prints: JSON for machines, short readable text for people."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from changegate.models import ChangeStatus, Outcome, TimelineEvent

OUTCOME_COLOUR = {
    Outcome.DONE: "green",
    Outcome.ROLLED_BACK: "yellow",
    Outcome.ROLLBACK_FAILED: "red",
    Outcome.BLOCKED: "red",
    Outcome.REJECTED: "yellow",
    Outcome.EXPIRED: "yellow",
    Outcome.ABORTED: "yellow",
}


def emit_json(data: Any) -> None:
    """Print one JSON document."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def state_label(status: ChangeStatus) -> str:
    """`DONE`, or the stage with `(paused)` while running."""
    if status.outcome is not None:
        return click.style(status.outcome.value, fg=OUTCOME_COLOUR[status.outcome], bold=True)
    return status.stage.value + (" (paused)" if status.paused else "")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain aligned table."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    click.echo(
        "  ".join(click.style(h.ljust(w), bold=True) for h, w in zip(headers, widths, strict=True))
    )
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def show_status(status: ChangeStatus, *, ui_url: str) -> None:
    """The whole story of one change: state, summary, units, timeline."""
    click.echo(f"{click.style(status.change_id, bold=True)}  {state_label(status)}")
    click.echo(f"web UI: {ui_url}")
    if status.summary:
        click.echo("")
        click.echo(status.summary.rstrip())
    elif status.findings:
        click.echo("\nFINDINGS")
        for finding in status.findings:
            click.echo(f"  [{finding.severity}] {finding.code}: {finding.message}")
    if status.units:
        click.echo("\nUNITS")
        table(
            ["unit", "phase", "state", "detail"],
            [[u.unit_id, u.phase, u.status, u.detail or ""] for u in status.units],
        )
    click.echo("\nTIMELINE")
    for event in status.timeline:
        click.echo(timeline_line(event))


def timeline_line(event: TimelineEvent) -> str:
    """One timeline event on one line."""
    who = f" [{event.actor}]" if event.actor else ""
    at = event.at.strftime("%H:%M:%S")
    return f"  {at}  {event.stage.value:<17} {event.kind:<16} {event.message}{who}"
