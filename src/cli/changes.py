"""CLI commands for agents and approvers: submit, list, show, watch, decide, control."""

from __future__ import annotations

import json
from typing import IO

import click
import yaml
from pydantic import ValidationError

from changegate.cli.context import (
    EXIT_INVALID,
    EXIT_OUTCOME,
    EXIT_REFUSED,
    Context,
    fail,
    pass_context,
    run,
    validation_message,
)
from changegate.cli.output import emit_json, show_status, state_label, table, timeline_line
from changegate.models import ChangeRequest, ChangeStatus, Control, Decision, Outcome


def load_request(stream: IO[str], *, source: str) -> ChangeRequest:
    """Parse YAML or JSON into a request, exiting with precise errors when it is invalid."""
    try:
        raw = yaml.safe_load(stream.read())
    except yaml.YAMLError as exc:
        fail(f"{source} is neither valid YAML nor JSON: {exc}", EXIT_INVALID)
    if not isinstance(raw, dict):
        fail(
            f"{source} must hold one change request object, not {type(raw).__name__}", EXIT_INVALID
        )
    try:
        return ChangeRequest.model_validate(raw)
    except ValidationError as exc:
        fail(validation_message(exc, source=source), EXIT_INVALID)
    raise AssertionError("unreachable")


@click.command()
@click.argument("file", type=click.File("r"))
@click.option("--wait", is_flag=True, help="Block until the change ends; exit 1 unless DONE.")
@pass_context
@run
async def submit(ctx: Context, file: IO[str], wait: bool) -> None:
    """Submit a change request from FILE (YAML or JSON; `-` reads stdin)."""
    source = "stdin" if file.name == "<stdin>" else file.name
    request = load_request(file, source=source)
    changes = await ctx.changes()
    change_id = await changes.submit(request)
    if not wait:
        if ctx.as_json:
            emit_json({"change_id": change_id, "url": ctx.settings.workflow_url(change_id)})
        else:
            click.echo(f"submitted {change_id}\n{ctx.settings.workflow_url(change_id)}")
        return
    if not ctx.as_json:
        click.echo(f"submitted {change_id}; waiting for it to end")
    final = await changes.wait(change_id)
    _print_final(ctx, final)


def _print_final(ctx: Context, status: ChangeStatus) -> None:
    if ctx.as_json:
        emit_json(status.model_dump(mode="json"))
    else:
        click.echo(f"{status.change_id} ended {state_label(status)}")
    if status.outcome != Outcome.DONE:
        raise SystemExit(EXIT_OUTCOME)


@click.command(name="list")
@click.option("--pending", is_flag=True, help="Only changes awaiting approval.")
@click.option("--agent", help="Only this agent's changes.")
@click.option("--target", help="Only changes on this target label, e.g. fleet:service=checkout.")
@click.option("--stage", help="Only changes in this stage (ENDED for finished ones).")
@click.option("--limit", default=50, show_default=True)
@pass_context
@run
async def list_changes(
    ctx: Context,
    pending: bool,
    agent: str | None,
    target: str | None,
    stage: str | None,
    limit: int,
) -> None:
    """List changes, newest first, from Temporal's visibility store."""
    clauses = []
    if pending:
        stage = "AWAITING_APPROVAL"
    for key, value in (("ChangeAgent", agent), ("ChangeTarget", target), ("ChangeStage", stage)):
        if value:
            escaped = value.replace("'", "\\'")
            clauses.append(f"{key} = '{escaped}'")
    refs = await (await ctx.changes()).list(query=" AND ".join(clauses), limit=limit)
    if ctx.as_json:
        emit_json([ref.__dict__ for ref in refs])
        return
    table(
        ["change", "stage", "agent", "target", "workflow"],
        [[r.change_id, r.stage or "", r.agent or "", r.target or "", r.status] for r in refs],
    )


@click.command()
@click.argument("change_id")
@pass_context
@run
async def show(ctx: Context, change_id: str) -> None:
    """Show a change: summary, findings, per-unit states, timeline."""
    status = await (await ctx.changes()).status(change_id)
    if ctx.as_json:
        emit_json(status.model_dump(mode="json"))
    else:
        show_status(status, ui_url=ctx.settings.workflow_url(change_id))


@click.command()
@click.argument("change_id")
@pass_context
@run
async def watch(ctx: Context, change_id: str) -> None:
    """Follow a change live until it ends; exit 1 unless it ends DONE."""
    printed = 0
    final: ChangeStatus | None = None
    async for status in (await ctx.changes()).watch(change_id):
        for event in status.timeline[printed:]:
            if ctx.as_json:
                click.echo(json.dumps(event.model_dump(mode="json"), sort_keys=True))
            else:
                click.echo(timeline_line(event))
        printed = len(status.timeline)
        final = status
    if final is not None:
        if not ctx.as_json:
            click.echo(f"{final.change_id} ended {state_label(final)}")
        if final.outcome != Outcome.DONE:
            raise SystemExit(EXIT_OUTCOME)


def _decision_command(name: str, *, reason_required: bool) -> click.Command:
    @click.command(name=name)
    @click.argument("change_id")
    @click.option("--as", "actor", required=True, help="Who decides (recorded in the history).")
    @click.option(
        "--reason" if reason_required else "--comment",
        "reason",
        help="Why (recorded in the history).",
        **({"required": True} if reason_required else {"default": ""}),
    )
    @pass_context
    @run
    async def command(ctx: Context, change_id: str, actor: str, reason: str) -> None:
        changes = await ctx.changes()
        judgement = await getattr(changes, name)(change_id, Decision(actor=actor, reason=reason))
        data = {"change_id": change_id, "verdict": name, **judgement.model_dump(mode="json")}
        if judgement.counted:
            ctx.emit(data, f"{name} by {actor} counted on {change_id}")
            return
        ctx.emit(data, "")
        fail(
            f"{name} by {actor} not counted: rule {judgement.rule}: {judgement.reason}",
            EXIT_REFUSED,
        )

    command.help = (
        f"{name.capitalize()} a change awaiting approval; exit 5 if policy does not count it."
    )
    return command


def _control_command(name: str, help_text: str) -> click.Command:
    @click.command(name=name, help=help_text)
    @click.argument("change_id")
    @click.option("--as", "actor", default="operator", show_default=True, help="Who.")
    @click.option("--reason", default="", help="Why (recorded in the history).")
    @pass_context
    @run
    async def command(ctx: Context, change_id: str, actor: str, reason: str) -> None:
        changes = await ctx.changes()
        await getattr(changes, name)(change_id, Control(actor=actor, reason=reason))
        _acknowledge(ctx, change_id, name)

    return command


def _acknowledge(ctx: Context, change_id: str, verb: str) -> None:
    if ctx.as_json:
        emit_json({"change_id": change_id, "sent": verb})
    else:
        click.echo(f"sent {verb} to {change_id}")


approve = _decision_command("approve", reason_required=False)
reject = _decision_command("reject", reason_required=True)
pause = _control_command("pause", "Hold a change at its next safe point.")
resume = _control_command("resume", "Continue a held change where it stopped.")
abort = _control_command("abort", "Abort a change; whatever was applied is rolled back.")

COMMANDS = [submit, list_changes, show, watch, approve, reject, pause, resume, abort]
