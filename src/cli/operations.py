"""CLI commands for operators: kill switches, breakers, incidents, and reconciling rows."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import click

from changegate.cli.context import Context, pass_context, run
from changegate.cli.output import emit_json, table
from changegate.models import KillSwitchScope


def _scope(_ctx: click.Context, _param: click.Parameter, agent: str | None) -> KillSwitchScope:
    """`--agent` as the scope of that agent's switch; the global one without it."""
    try:
        return KillSwitchScope.of(agent or None)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.group(name="killswitch")
def killswitch() -> None:
    """Stop every in-flight change (or one agent's): pause or abort, and refuse new ones."""


@killswitch.command(name="engage")
@click.option(
    "--agent", "scope", callback=_scope, help="Only this agent's changes (default: every change)."
)
@click.option(
    "--mode",
    type=click.Choice(["pause", "abort"]),
    default="pause",
    show_default=True,
    help="pause: hold at the next safe point; abort: roll back what was applied.",
)
@click.option("--reason", required=True, help="Why (recorded, with your token's name).")
@pass_context
@run
async def engage(ctx: Context, scope: KillSwitchScope, mode: str, reason: str) -> None:
    """Engage a kill switch; new changes in its scope are refused until it is released."""
    started = time.monotonic()
    async with ctx.api() as api:
        report = await api.kill_switch(scope, "engage", mode=mode, reason=reason)
    took = time.monotonic() - started
    reached = report["reached"]
    ctx.emit(
        {**report, "seconds": round(took, 3)},
        f"kill switch {report['scope']} engaged ({mode}) by {report['actor']}: reached "
        f"{len(reached)} running change(s) in {took:.2f}s" + "".join(f"\n  {c}" for c in reached),
    )


@killswitch.command(name="release")
@click.option(
    "--agent", "scope", callback=_scope, help="The agent's switch (default: the global one)."
)
@click.option("--reason", required=True, help="Why (recorded, with your token's name).")
@pass_context
@run
async def release(ctx: Context, scope: KillSwitchScope, reason: str) -> None:
    """Release a kill switch and resume the changes it paused."""
    async with ctx.api() as api:
        report = await api.kill_switch(scope, "release", mode="pause", reason=reason)
    ctx.emit(report, f"kill switch {report['scope']} released; resumed what it held")


@killswitch.command(name="list")
@pass_context
@run
async def list_switches(ctx: Context) -> None:
    """Every kill switch and its state."""
    async with ctx.api() as api:
        switches = await api.kill_switches()
    if ctx.as_json:
        emit_json(switches)
        return
    table(
        ["scope", "state", "mode", "by", "reason", "since"],
        [
            [
                s["scope"],
                "ENGAGED" if s["engaged"] else "released",
                s["mode"],
                s["actor"],
                s["reason"],
                _when(s["updated_at"]),
            ]
            for s in switches
        ],
    )


@click.group()
def breaker() -> None:
    """Circuit breakers: an agent's kill switch that tripped by itself; a person releases it."""


@breaker.command(name="list")
@click.option("--open", "open_only", is_flag=True, help="Only breakers not yet released.")
@click.option("--agent", default=None, help="Only this agent's breakers.")
@pass_context
@run
async def list_breakers(ctx: Context, open_only: bool, agent: str | None) -> None:
    """Breaker trips, oldest first: trigger, response, why, and who released them."""
    params: dict[str, Any] = {"open_only": open_only}
    if agent:
        params["agent"] = agent
    async with ctx.api() as api:
        trips: list[dict[str, Any]] = await api.call("GET", "/breakers", params=params)
    if ctx.as_json:
        emit_json(trips)
        return
    table(
        ["trip", "agent", "breaker", "response", "at", "state", "reason"],
        [
            [
                t["trip_id"],
                t["agent_id"],
                t["breaker"],
                t["response"],
                _when(t["at"]),
                f"released by {t['released_by']}" if t["released_at"] else "OPEN",
                t["reason"],
            ]
            for t in trips
        ],
    )


@breaker.command(name="release")
@click.argument("agent")
@click.option("--reason", required=True, help="Why (recorded, with your token's name).")
@pass_context
@run
async def release_breaker(ctx: Context, agent: str, reason: str) -> None:
    """Release an agent's open breakers and resume the changes their pause held."""
    async with ctx.api() as api:
        report = await api.call("POST", f"/breakers/{agent}/release", json={"reason": reason})
    names = ", ".join(f"{t['breaker']} ({t['trip_id']})" for t in report["released"])
    ctx.emit(
        report,
        f"released {names} for {agent} as {report['actor']}; resumed "
        f"{len(report['resumed'])} held change(s)" + "".join(f"\n  {c}" for c in report["resumed"]),
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
    async with ctx.api() as api:
        found = await api.incidents(open_only=open_only)
    if ctx.as_json:
        emit_json(found)
        return
    table(
        ["incident", "severity", "category", "target", "agent", "opened", "state"],
        [
            [
                i["incident_id"],
                i["severity"],
                i["category"],
                i["target_label"],
                i["agent_id"],
                _when(i["opened_at"]),
                "closed" if i["closed_at"] else "OPEN",
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
    async with ctx.api() as api:
        found = await api.incident(incident_id)
    if ctx.as_json:
        emit_json(found)
    elif markdown:
        click.echo(found["review_markdown"])
    else:
        state = f"closed {_when(found['closed_at'])}" if found["closed_at"] else "OPEN"
        click.echo(f"{found['incident_id']}  {found['severity']}  {found['category']}  {state}\n")
        click.echo(found["review_markdown"])


@incident.command(name="close")
@click.argument("incident_id")
@pass_context
@run
async def close(ctx: Context, incident_id: str) -> None:
    """Close an incident, lifting the freeze it put on its target."""
    async with ctx.api() as api:
        found = await api.close_incident(incident_id)
    ctx.emit(found, f"closed {incident_id}")


@click.command()
@click.option("--dry-run", is_flag=True, help="Only list what would be released.")
@pass_context
@run
async def reconcile(ctx: Context, dry_run: bool) -> None:
    """Release the targets of changes whose workflows closed without recording it (admin).

    Workers do this every 30 s on their own (CHANGEGATE_RECONCILE_INTERVAL_SECONDS).
    """
    async with ctx.api() as api:
        report = await api.reconcile(dry_run=dry_run)
    repairs = report["repairs"]
    verb = "would release" if dry_run else "released"
    lines = [
        f"  {r['change_id']}  {r['target_label']}  workflow {r['workflow_status']} -> "
        f"{r['outcome']}" + _unwritten(r, dry_run=dry_run)
        for r in repairs
    ]
    ctx.emit(
        report,
        f"checked {report['checked']} active change(s) in {report['seconds']:.2f}s; {verb} "
        f"{len(repairs)}" + "".join(f"\n{line}" for line in lines),
    )


def _unwritten(repair: dict[str, Any], *, dry_run: bool) -> str:
    if repair["written"] or dry_run:
        return ""
    return f"  (not written: {repair['error']})" if repair["error"] else "  (already released)"


def _when(stamp: str) -> str:
    return datetime.fromisoformat(stamp).isoformat(timespec="seconds")
