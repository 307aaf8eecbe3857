"""CLI commands for operators: kill switches and incidents."""

from __future__ import annotations

import time

import click

from changegate.cli.context import EXIT_NOT_FOUND, Context, fail, pass_context, run
from changegate.cli.output import emit_json, table
from changegate.client import Operations
from changegate.store import KillMode


def _scope(agent: str | None) -> str:
    return f"agent:{agent}" if agent else "global"


@click.group(name="killswitch")
def killswitch() -> None:
    """Stop every in-flight change (or one agent's): pause or abort, and refuse new ones."""


@killswitch.command(name="engage")
@click.option("--agent", help="Only this agent's changes (default: every change).")
@click.option(
    "--mode",
    type=click.Choice(["pause", "abort"]),
    default="pause",
    show_default=True,
    help="pause: hold at the next safe point; abort: roll back what was applied.",
)
@click.option("--as", "actor", required=True, help="Who engages it (recorded).")
@click.option("--reason", required=True, help="Why (recorded).")
@pass_context
@run
async def engage(ctx: Context, agent: str | None, mode: str, actor: str, reason: str) -> None:
    """Engage a kill switch; new changes in its scope are refused until it is released."""
    started = time.monotonic()
    changes = await ctx.changes()
    kill_mode: KillMode = "abort" if mode == "abort" else "pause"
    report = await Operations(changes).engage(_scope(agent), kill_mode, actor=actor, reason=reason)
    took = time.monotonic() - started
    ctx.emit(
        {**report.__dict__, "seconds": round(took, 3)},
        f"kill switch {report.scope} engaged ({mode}): reached {len(report.reached)} running "
        f"change(s) in {took:.2f}s" + "".join(f"\n  {c}" for c in report.reached),
    )


@killswitch.command(name="release")
@click.option("--agent", help="The agent's switch (default: the global one).")
@click.option("--as", "actor", required=True, help="Who releases it (recorded).")
@click.option("--reason", default="", help="Why (recorded).")
@pass_context
@run
async def release(ctx: Context, agent: str | None, actor: str, reason: str) -> None:
    """Release a kill switch and resume the changes it paused."""
    changes = await ctx.changes()
    report = await Operations(changes).release(_scope(agent), actor=actor, reason=reason)
    ctx.emit(report.__dict__, f"kill switch {report.scope} released; resumed what it held")


@killswitch.command(name="list")
@pass_context
@run
async def list_switches(ctx: Context) -> None:
    """Every kill switch and its state."""
    switches = await Operations(await ctx.changes()).kill_switches()
    if ctx.as_json:
        emit_json([s.model_dump(mode="json") for s in switches])
        return
    table(
        ["scope", "state", "mode", "by", "reason", "since"],
        [
            [
                s.scope,
                "ENGAGED" if s.engaged else "released",
                s.mode,
                s.actor,
                s.reason,
                s.updated_at.isoformat(timespec="seconds"),
            ]
            for s in switches
        ],
    )


@click.group()
def incident() -> None:
    """Incidents opened for changes that rolled back, with their pre-filled reviews."""


@incident.command(name="list")
@click.option("--open", "open_only", is_flag=True, help="Only incidents still open.")
@pass_context
@run
async def list_incidents(ctx: Context, open_only: bool) -> None:
    """Incidents, newest first."""
    found = await Operations(await ctx.changes()).incidents(open_only=open_only)
    if ctx.as_json:
        emit_json([i.model_dump(mode="json") for i in found])
        return
    table(
        ["incident", "severity", "category", "target", "agent", "opened", "state"],
        [
            [
                i.incident_id,
                i.severity,
                i.category,
                i.target_label,
                i.agent_id,
                i.opened_at.isoformat(timespec="seconds"),
                "closed" if i.closed_at else "OPEN",
            ]
            for i in found
        ],
    )


@incident.command(name="show")
@click.argument("incident_id")
@click.option("--markdown", is_flag=True, help="Print only the post-incident review.")
@pass_context
@run
async def show_incident(ctx: Context, incident_id: str, markdown: bool) -> None:
    """One incident and its post-incident review."""
    found = await Operations(await ctx.changes()).incident(incident_id)
    if found is None:
        fail(f"no incident {incident_id!r}; `changegate incident list` shows them", EXIT_NOT_FOUND)
        return
    if ctx.as_json:
        emit_json(found.model_dump(mode="json"))
    elif markdown:
        click.echo(found.review_markdown)
    else:
        state = f"closed {found.closed_at:%Y-%m-%d %H:%M}" if found.closed_at else "OPEN"
        click.echo(f"{found.incident_id}  {found.severity}  {found.category}  {state}\n")
        click.echo(found.review_markdown)


@incident.command(name="close")
@click.argument("incident_id")
@pass_context
@run
async def close(ctx: Context, incident_id: str) -> None:
    """Close an incident, lifting the freeze it put on its target."""
    found = await Operations(await ctx.changes()).close_incident(incident_id)
    if found is None:
        fail(f"no incident {incident_id!r}", EXIT_NOT_FOUND)
        return
    ctx.emit(found.model_dump(mode="json"), f"closed {incident_id}")
